import { Global, Logger, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { AppConfig } from '../config/app-config';
import { MIGRATIONS } from './migrations';
import { SQLITE_HANDLE, SqliteHandle } from './sqlite-handle';

/** How long a statement waits for another connection's write lock before failing with SQLITE_BUSY. */
export const BUSY_TIMEOUT_MS = 5000;

/**
 * Start-up must never fail on a damaged or foreign live schema: the service then stays up to
 * report it (health, the log) and the CLI restore keeps working. A failed migration is logged here; HealthModule's
 * LiveSchema compares the live schema with this build's and reports what is wrong.
 */
async function runMigrationsSurviving(dataSource: DataSource): Promise<void> {
  try {
    await dataSource.runMigrations({ transaction: 'each' });
  } catch (error) {
    new Logger('DatabaseModule').error(
      `Migrations failed; the service starts anyway and reports the database schema in /api/health: ${
        error instanceof Error ? error.message : String(error)
      }`,
    );
  }
}

@Global()
@Module({
  imports: [
    TypeOrmModule.forRootAsync({
      inject: [AppConfig],
      useFactory: (config: AppConfig) => {
        mkdirSync(path.dirname(config.dbPath), { recursive: true, mode: 0o700 });
        return {
          type: 'better-sqlite3' as const,
          database: config.dbPath,
          enableWAL: true,
          timeout: BUSY_TIMEOUT_MS,
          prepareDatabase: (db: SqliteHandle) => {
            db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
            db.pragma('foreign_keys = ON');
            if (config.replication) {
              // The replication shipper is the only checkpointer: it checkpoints once the frames are read.
              db.pragma('wal_autocheckpoint = 0');
            }
          },
          autoLoadEntities: true,
          synchronize: false,
          migrations: MIGRATIONS,
          // Run by dataSourceFactory below, which survives a failure: see there.
          migrationsRun: false,
          migrationsTransactionMode: 'each' as const,
          logging: false,
        };
      },
      dataSourceFactory: async (options?: DataSourceOptions) => {
        const dataSource = new DataSource(options!);
        await dataSource.initialize();
        await runMigrationsSurviving(dataSource);
        return dataSource;
      },
    }),
  ],
  providers: [
    {
      provide: SQLITE_HANDLE,
      inject: [DataSource],
      useFactory: (dataSource: DataSource): SqliteHandle =>
        (dataSource.driver as unknown as { databaseConnection: SqliteHandle }).databaseConnection,
    },
  ],
  exports: [SQLITE_HANDLE],
})
export class DatabaseModule {}
