import { Command, CommandRunner } from 'nest-commander';
import { usageError } from '../cli-error';
import { CreateCommand } from './create.command';
import { DrillCommand } from './drill.command';
import { ListCommand } from './list.command';
import { PruneCommand } from './prune.command';
import { RemoteCommand } from './remote.command';
import { RestoreCommand } from './restore.command';
import { VerifyCommand } from './verify.command';

export const BACKUP_SUBCOMMANDS = [
  ListCommand,
  CreateCommand,
  VerifyCommand,
  RestoreCommand,
  PruneCommand,
  DrillCommand,
  RemoteCommand,
] as const;

@Command({
  name: 'backups',
  description:
    'Create, list, verify, restore, prune and drill backups of the Mission Control database; remote: off-site copies',
  subCommands: [...BACKUP_SUBCOMMANDS],
})
export class BackupsCommand extends CommandRunner {
  /** Reached only without a known subcommand (commander hands unknown words here as arguments). */
  run(params: string[]): Promise<void> {
    this.command.outputHelp({ error: true });
    const names = BACKUP_SUBCOMMANDS.map((c) => c.name.replace(/Command$/, '').toLowerCase()).join(', ');
    return Promise.reject(
      usageError(
        params.length > 0 ? `unknown command '${params[0]}' (one of: ${names})` : `missing command (one of: ${names})`,
      ),
    );
  }
}
