import { CommandRunner, Option, SubCommand } from 'nest-commander';
import { usageError } from '../cli-error';
import { formatBytes, formatDuration } from '../format';
import { OfflineRestore } from '../offline-restore';
import { RemoteRestore } from '../remote-restore';
import { Terminal } from '../terminal';

@SubCommand({
  name: 'restore',
  arguments: '[name]',
  description:
    'OFFLINE restore, with the service stopped: verify the backup, keep a safety copy of the current database, ' +
    'then atomically replace it. With --from-remote, disaster recovery on a machine with no database yet',
  argsDescription: { name: 'backup file name, e.g. mc-backup-2026-01-01_03-00-00.db' },
})
export class RestoreCommand extends CommandRunner {
  constructor(
    private readonly restore: OfflineRestore,
    private readonly remote: RemoteRestore,
    private readonly terminal: Terminal,
  ) {
    super();
  }

  @Option({ flags: '-y, --yes', description: 'do not ask for confirmation (required without a terminal)' })
  parseYes(): boolean {
    return true;
  }

  @Option({
    flags: '--from-remote [name]',
    description:
      'download, decrypt, verify and install an off-site copy (a name, or `latest`) as the database; with --at, ' +
      'a moment rebuilt from the replica instead',
  })
  parseFromRemote(value: string): string {
    return value;
  }

  @Option({
    flags: '--at <time>',
    description: 'with --from-remote: the moment to rebuild (ISO-8601 with a zone, or `latest`) from the replica',
  })
  parseAt(value: string): string {
    return value;
  }

  async run([name]: string[], options: { yes?: boolean; fromRemote?: string | true; at?: string } = {}): Promise<void> {
    if (options.at !== undefined) {
      if (options.fromRemote !== true || name !== undefined) {
        throw usageError('--at goes with a bare --from-remote: backups restore --from-remote --at <time|latest> --yes');
      }
      const outcome = await this.remote.runAt(options.at, { yes: options.yes === true });
      this.terminal.out(
        `Installed the replicated state as of ${outcome.restoredTo.toISOString()} (${formatBytes(outcome.size)}) ` +
          `in ${formatDuration(outcome.durationMs)}`,
      );
      this.terminal.out('Start the service to use the restored database.');
      return;
    }
    if (options.fromRemote === true) {
      throw usageError('--from-remote needs a name or `latest` (or --at <time|latest> for a point in time)');
    }
    if (options.fromRemote !== undefined) {
      if (name !== undefined) {
        throw usageError('give either a backup name or --from-remote, not both');
      }
      const outcome = await this.remote.run(options.fromRemote, { yes: options.yes === true });
      this.terminal.out(
        `Installed ${outcome.name} (${formatBytes(outcome.size)}, sha256 ${outcome.sha256}) from the bucket in ` +
          `${formatDuration(outcome.durationMs)}`,
      );
      this.terminal.out('Start the service to use the restored database.');
      return;
    }
    if (name === undefined) {
      throw usageError("missing required argument 'name' (or --from-remote <name|latest>)");
    }
    const outcome = await this.restore.run(name, { yes: options.yes === true });
    this.terminal.out(
      `Restored ${outcome.name} in ${formatDuration(outcome.durationMs)}` +
        (outcome.safetyBackup === null ? '' : `; the previous database is kept as ${outcome.safetyBackup}`),
    );
    this.terminal.out('Start the service to use the restored database.');
  }
}
