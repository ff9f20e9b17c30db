import { CommandRunner, Option, SubCommand } from 'nest-commander';
import { formatDuration } from '../format';
import { OfflineRestore } from '../offline-restore';
import { Terminal } from '../terminal';

@SubCommand({
  name: 'restore',
  arguments: '<name>',
  description:
    'OFFLINE restore, with the service stopped: verify the backup, keep a safety copy of the current database, ' +
    'then atomically replace it',
  argsDescription: { name: 'backup file name, e.g. mc-backup-2026-01-01_03-00-00.db' },
})
export class RestoreCommand extends CommandRunner {
  constructor(
    private readonly restore: OfflineRestore,
    private readonly terminal: Terminal,
  ) {
    super();
  }

  @Option({ flags: '-y, --yes', description: 'do not ask for confirmation (required without a terminal)' })
  parseYes(): boolean {
    return true;
  }

  async run([name]: string[], options: { yes?: boolean } = {}): Promise<void> {
    const outcome = await this.restore.run(name, { yes: options.yes === true });
    this.terminal.out(
      `Restored ${outcome.name} in ${formatDuration(outcome.durationMs)}` +
        (outcome.safetyBackup === null ? '' : `; the previous database is kept as ${outcome.safetyBackup}`),
    );
    this.terminal.out('Start the service to use the restored database.');
  }
}
