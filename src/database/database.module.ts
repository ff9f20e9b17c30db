import { Global, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { DataSource } from 'typeorm';
import { AppConfig } from '../config/app-config';
import { MIGRATIONS } from './migrations';
import { SQLITE_HANDLE, SqliteHandle } from './sqlite-handle';

/** How long a statement waits for another connection's write lock before failing with SQLITE_BUSY. */
export const BUSY_TIMEOUT_MS = 5000;

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
          },
          autoLoadEntities: true,
          synchronize: false,
          migrations: MIGRATIONS,
          migrationsRun: true,
          migrationsTransactionMode: 'each' as const,
          logging: false,
        };
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
