#!/usr/bin/env node
/**
 * The operator CLI: `mission-control-backups backups <list|create|verify|restore|prune|drill>` and
 * `mission-control-backups users reset-password <name>`.
 * Exit codes: 0 success, 1 failure (nothing done, or a check failed), 2 usage (unknown command or option, missing
 * argument, a malformed backup name, restore without --yes when nobody can confirm).
 */
import 'reflect-metadata';
import { DomainError } from '../common/domain-error';
import { CommandFactory } from 'nest-commander';
import { AppConfig, ConfigError, loadConfig } from '../config/app-config';
import { CliError, EXIT, systemErrorLine } from './cli-error';
import { CLI_NAME, CliModule, UsageExit } from './cli.module';
import { CliLogger } from './cli-logger';

function reportFailure(error: unknown): void {
  const systemError = systemErrorLine(error);
  if (error instanceof UsageExit) {
    // Commander has already printed the message or the help.
    process.exitCode = error.exitCode;
  } else if (error instanceof CliError) {
    process.stderr.write(`${error.message}\n`);
    process.exitCode = error.exitCode;
  } else if (error instanceof DomainError) {
    // An expected outcome of the storage layer ("Backup not found"): its message is written for an operator.
    process.stderr.write(`${error.message}\n`);
    process.exitCode = EXIT.failure;
  } else if (systemError !== undefined) {
    process.stderr.write(`${systemError}\n`);
    process.exitCode = EXIT.failure;
  } else {
    // Not an expected outcome: show everything, it is a bug report.
    process.stderr.write(
      `Unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exitCode = EXIT.failure;
  }
}

async function main(): Promise<void> {
  let config: AppConfig;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exitCode = EXIT.failure;
      return;
    }
    throw error;
  }
  const logger = new CliLogger(config);
  // Exit codes are set, not forced with process.exit: the app context closes, the database is closed cleanly
  // (checkpointing its WAL) and output is flushed before the process ends on its own.
  await CommandFactory.run(CliModule.forRoot(config, logger), {
    cliName: CLI_NAME,
    logger,
    abortOnError: false,
    // Replaced on every command by UsageExitCodes once the tree is built; this covers the root until then.
    errorHandler: (error) => {
      const { exitCode, code } = error as Error & { exitCode?: number; code?: string };
      throw new UsageExit(exitCode === 0 ? EXIT.ok : EXIT.usage, code ?? 'commander.error');
    },
    serviceErrorHandler: reportFailure,
  });
}

main().catch(reportFailure);
