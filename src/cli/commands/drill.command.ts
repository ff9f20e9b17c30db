import { CommandRunner, SubCommand } from 'nest-commander';
import { AuditService } from '../../audit/audit.service';
import { RecoveryService } from '../../recovery/recovery.service';
import { RESTORE_DRILL_TASK } from '../../scheduler/schedule-timing';
import { AppSession } from '../app-session';
import { CLI_ACTOR } from '../cli-actor';
import { CliError } from '../cli-error';
import { formatDuration } from '../format';
import { Terminal } from '../terminal';

@SubCommand({
  name: 'drill',
  description:
    'Restore drill: restore the newest backup into a scratch file, integrity_check it, check users are readable ' +
    'and an admin exists, remove the scratch file. Exit 0 if it passed, 1 if not',
})
export class DrillCommand extends CommandRunner {
  constructor(
    private readonly session: AppSession,
    private readonly terminal: Terminal,
  ) {
    super();
  }

  async run(): Promise<void> {
    this.terminal.out('Running the restore drill on the newest backup…');
    const started = performance.now();
    const outcome = await this.session.run(async (app) => {
      // The service's own drill (the same one the scheduled task runs); it never throws.
      const result = await app.get(RecoveryService).drill();
      // The same audit row as the scheduler's drill task, with `source: cli`.
      await app.get(AuditService).record({
        action: RESTORE_DRILL_TASK,
        actor: CLI_ACTOR,
        targetType: 'task',
        targetId: RESTORE_DRILL_TASK,
        detail: { source: 'cli', ok: result.ok, message: result.message, name: result.name },
      });
      return result;
    });
    this.terminal.out(`${outcome.message} (${formatDuration(performance.now() - started)})`);
    if (!outcome.ok) {
      throw new CliError(`Restore drill FAILED${outcome.name === null ? '' : ` on ${outcome.name}`}`);
    }
  }
}
