import { Injectable, type INestApplicationContext, type LoggerService } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import * as fs from 'node:fs';
import { AppConfig } from '../config/app-config';
import { CliError } from './cli-error';
import { CliLogger } from './cli-logger';

/**
 * Boots the app's data layer (see CliAppModule) for the length of one piece of work, then closes it.
 *
 * Not booted by CommandFactory with the commands: the offline restore must find the database closed (an open
 * connection of our own would hold the very lock that tells us the service is running, and must never sit on a
 * file that is about to be replaced), and it boots the app only afterwards, on the restored file.
 */
@Injectable()
export class AppSession {
  constructor(
    private readonly config: AppConfig,
    private readonly logger: CliLogger,
  ) {}

  get databaseExists(): boolean {
    return fs.existsSync(this.config.dbPath);
  }

  async run<T>(work: (app: INestApplicationContext) => Promise<T>): Promise<T> {
    // Booting creates and migrates a missing database; an operator tool must not conjure an empty one.
    if (!this.databaseExists) {
      throw new CliError(
        `No database at ${this.config.dbPath} (set MISSION_CONTROL_DB_PATH to the service's database)`,
      );
    }
    // Loaded only here: the data layer (TypeORM, every module of the app) is most of the CLI's start-up, and a usage
    // error, --help or a command that never boots the app has no use for it.
    const { CliAppModule } = await import('./cli-app.module');
    const app = await NestFactory.createApplicationContext(CliAppModule.forRoot(this.config), {
      logger: this.logger as LoggerService,
      abortOnError: false,
    });
    try {
      return await work(app);
    } finally {
      await app.close();
    }
  }
}
