import { CommandRunner, SubCommand } from 'nest-commander';
import { BackupFiles } from '../../backups/backup-files';
import { BackupsService } from '../../backups/backups.service';
import { AppSession } from '../app-session';
import { CLI_ACTOR } from '../cli-actor';
import { CliError } from '../cli-error';
import { formatBytes, formatDuration } from '../format';
import { Terminal } from '../terminal';

@SubCommand({
  name: 'create',
  description: 'Take a backup now (hot: the service may keep running), then apply retention',
})
export class CreateCommand extends CommandRunner {
  constructor(
    private readonly session: AppSession,
    private readonly terminal: Terminal,
  ) {
    super();
  }

  async run(): Promise<void> {
    this.terminal.out('Creating a backup…');
    const { created, pruned } = await this.session.run(async (app) => {
      const files = app.get(BackupFiles);
      const before = (await files.list()).map((f) => f.name);
      let backup;
      try {
        backup = await app.get(BackupsService).create({ actor: CLI_ACTOR, kind: 'manual' });
      } catch {
        // The service has logged the cause (stderr) and audited backup_failed; its error is the API's 500.
        throw new CliError('Backup failed: nothing was published (see the error above and the audit trail)');
      }
      const after = new Set((await files.list()).map((f) => f.name));
      return { created: backup, pruned: before.filter((name) => !after.has(name)) };
    });
    this.terminal.out(
      `Created ${created.name} (${formatBytes(created.size)}) in ${formatDuration(created.duration_ms)}`,
    );
    for (const name of pruned) {
      this.terminal.out(`Pruned ${name} (retention)`);
    }
  }
}
