import { validateBackupName } from '../backups/backup-name';
/** The CLI's exit codes: scripts and runbooks branch on these, so they are part of its interface. */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/**
 * An expected way for a command to end: the message is printed as is (one line, for an operator), without a
 * stack trace. Anything else that escapes a command is a bug and is printed with its stack.
 */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode = EXIT.failure,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export function usageError(message: string): CliError {
  return new CliError(message, EXIT.usage);
}

/** A backup name from the command line, by the one name rule; a usage error (exit 2) when it breaks it. */
export function cliBackupName(raw: unknown): string {
  const valid = validateBackupName(raw);
  if (!valid.ok) {
    throw usageError(valid.reason);
  }
  return valid.name;
}

/** An error's code or class for logs and audit rows, as BackupsService does: never a message with a path in it. */
export function errorReason(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^[A-Z0-9_]{2,40}$/.test(code)) {
    return code;
  }
  return error instanceof Error ? error.name : 'unknown';
}

/** For the operator's terminal: the message itself (SQLite's and Node's messages are what they need to act). */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Node's own message for an operating-system refusal (a missing folder, a full disk, no permission), or undefined for
 * anything else. Those are the machine's state for the operator to fix, not bugs, so they get one line, no stack.
 */
export function systemErrorLine(error: unknown): string | undefined {
  const { code, syscall, message } = (error ?? {}) as { code?: unknown; syscall?: unknown; message?: unknown };
  if (typeof code === 'string' && typeof syscall === 'string' && typeof message === 'string') {
    return message.split('\n')[0];
  }
  return undefined;
}
