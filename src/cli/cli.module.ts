import { DynamicModule, Injectable, Module, OnApplicationBootstrap } from '@nestjs/common';
import { InjectCommander } from 'nest-commander';
import { BackupFiles } from '../backups/backup-files';
import { Clock } from '../common/clock';
import { AppConfig } from '../config/app-config';
import { ConfigModule } from '../config/config.module';
import { AppSession } from './app-session';
import { EXIT } from './cli-error';
import { CliLogger } from './cli-logger';
import { BACKUP_SUBCOMMANDS, BackupsCommand } from './commands/backups.command';
import { ResetPasswordCommand, UsersCommand } from './commands/users.command';
import { KeysCommand, KeysGenerateCommand } from './commands/keys.command';
import { RemoteListCommand, RemotePullCommand } from './commands/remote.command';
import { RemoteRestore } from './remote-restore';
import { FreshInstall } from '../recovery/fresh-install';
import { ImportPipeline } from '../recovery/import-pipeline';
import { OfflineRestore } from './offline-restore';
import { Terminal } from './terminal';

export const CLI_NAME = 'mission-control-backups';

/** What this code needs of commander's Command (nest-commander bundles its own commander; its types are not ours). */
interface CommanderNode {
  readonly commands: readonly CommanderNode[];
  name(value: string): unknown;
  exitOverride(handler: (error: UsageExit) => never): unknown;
  allowExcessArguments(allow: boolean): unknown;
}

/** Commander's own errors (help shown, unknown option, missing argument …) mapped to our exit codes. */
export class UsageExit extends Error {
  constructor(
    readonly exitCode: number,
    readonly code: string,
  ) {
    super(code);
    this.name = 'UsageExit';
  }
}

/**
 * nest-commander sets its `errorHandler` only on the root command, and commander does not pass it on to
 * subcommands added with addCommand, so an unknown option on a subcommand would exit with commander's 1. Walk the
 * whole tree once it is built: every usage error exits 2, help and version 0; leaves refuse extra arguments.
 */
@Injectable()
export class UsageExitCodes implements OnApplicationBootstrap {
  constructor(@InjectCommander() private readonly root: CommanderNode) {}

  onApplicationBootstrap(): void {
    this.root.name(CLI_NAME);
    const visit = (node: CommanderNode, isRoot: boolean): void => {
      node.exitOverride((error) => {
        throw new UsageExit(error.exitCode === 0 ? EXIT.ok : EXIT.usage, error.code);
      });
      // `backups` itself takes the unknown word to report it; every other command has fixed arguments.
      if (!isRoot && node.commands.length === 0) {
        node.allowExcessArguments(false);
      }
      node.commands.forEach((child) => visit(child, false));
    };
    visit(this.root, true);
  }
}

@Module({})
export class CliModule {
  static forRoot(config: AppConfig, logger: CliLogger): DynamicModule {
    return {
      module: CliModule,
      imports: [ConfigModule.forRoot(config)],
      providers: [
        { provide: CliLogger, useValue: logger },
        // The backups folder without the app: what the offline restore and a database-less `list` work with.
        { provide: BackupFiles, useFactory: () => new BackupFiles(config.backupsDir) },
        Clock,
        Terminal,
        AppSession,
        OfflineRestore,
        FreshInstall,
        {
          provide: ImportPipeline,
          inject: [BackupFiles],
          useFactory: (files: BackupFiles) => new ImportPipeline(files),
        },
        RemoteRestore,
        UsageExitCodes,
        BackupsCommand,
        ...BACKUP_SUBCOMMANDS,
        UsersCommand,
        ResetPasswordCommand,
        RemoteListCommand,
        RemotePullCommand,
        KeysCommand,
        KeysGenerateCommand,
      ],
    };
  }
}
