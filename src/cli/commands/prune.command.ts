import { CommandRunner, SubCommand } from 'nest-commander';
import { BackupsService } from '../../backups/backups.service';
import { SettingsService } from '../../settings/settings.service';
import { AppSession } from '../app-session';
import { CLI_ACTOR } from '../cli-actor';
import { Terminal } from '../terminal';

@SubCommand({
  name: 'prune',
  description: 'Apply the retention settings now (never removes uploads or safety copies)',
})
export class PruneCommand extends CommandRunner {
  constructor(
    private readonly session: AppSession,
    private readonly terminal: Terminal,
  ) {
    super();
  }

  async run(): Promise<void> {
    const { pruned, count, days } = await this.session.run(async (app) => {
      const settings = app.get(SettingsService);
      return {
        pruned: await app.get(BackupsService).prune(CLI_ACTOR),
        count: await settings.getInt('general.backup_retention_count'),
        days: await settings.getInt('general.backup_retention_days'),
      };
    });
    const rule = `retention count ${count}, max age ${days === 0 ? 'off' : `${days} days`}`;
    if (pruned.length === 0) {
      this.terminal.out(`Nothing to prune (${rule})`);
      return;
    }
    for (const name of pruned) {
      this.terminal.out(`Removed ${name}`);
    }
    this.terminal.out(`Pruned ${pruned.length} backup(s) (${rule})`);
  }
}
