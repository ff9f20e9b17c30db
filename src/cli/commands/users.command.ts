import { Command, CommandRunner, Option, SubCommand } from 'nest-commander';
import { DataSource } from 'typeorm';
import { AuditService } from '../../audit/audit.service';
import { MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, randomPassword } from '../../auth/credentials';
import { replacePassword } from '../../auth/passwords';
import { UserEntity } from '../../auth/user.entity';
import { AppSession } from '../app-session';
import { CLI_ACTOR, CLI_META } from '../cli-actor';
import { CliError, usageError } from '../cli-error';
import { Terminal } from '../terminal';

/**
 * `users reset-password <name>`: for an operator locked out of every admin account. Safe with the service running
 * or stopped: it changes two tables in one SQLite transaction, and the service reads users and sessions from the
 * database on every request (nothing is cached), so the new password works at once and old sessions stop at once.
 */
@SubCommand({
  name: 'reset-password',
  arguments: '<name>',
  description: "Set a user's password (a new random one, printed once, or one read from stdin) and end their sessions",
  argsDescription: { name: 'the user name, e.g. admin' },
})
export class ResetPasswordCommand extends CommandRunner {
  constructor(
    private readonly session: AppSession,
    private readonly terminal: Terminal,
  ) {
    super();
  }

  @Option({ flags: '--password-stdin', description: 'read the new password from stdin instead of generating one' })
  parsePasswordStdin(): boolean {
    return true;
  }

  async run([name]: string[], options: { passwordStdin?: boolean } = {}): Promise<void> {
    const generated = options.passwordStdin !== true;
    const password = generated ? randomPassword() : await readStdin();
    if (password.length < MIN_PASSWORD_LENGTH || password.length > MAX_PASSWORD_LENGTH) {
      throw usageError(`the password must have ${MIN_PASSWORD_LENGTH}-${MAX_PASSWORD_LENGTH} characters`);
    }
    const sessionsEnded = await this.session.run(async (app) => {
      const dataSource = app.get(DataSource);
      const user = await dataSource.getRepository(UserEntity).findOne({ where: { username: name } });
      if (!user) {
        throw new CliError(`No user named "${name}"`);
      }
      const ended = await replacePassword(dataSource.manager, user.id, password);
      await app.get(AuditService).record({
        action: 'password_reset',
        actor: CLI_ACTOR,
        targetType: 'user',
        targetId: String(user.id),
        detail: { username: user.username, sessions_ended: ended, via: 'cli' },
        meta: CLI_META,
      });
      return ended;
    });
    if (generated) {
      // The terminal only: never a log line, never a file.
      this.terminal.out(`New password for "${name}": ${password}`);
    } else {
      this.terminal.out(`Password of "${name}" set.`);
    }
    this.terminal.out(
      `${sessionsEnded} session(s) ended. Sign in, then change it with POST /api/auth/password if it was generated.`,
    );
  }
}

@Command({
  name: 'users',
  description: 'Manage users when no admin can sign in',
  subCommands: [ResetPasswordCommand],
})
export class UsersCommand extends CommandRunner {
  run(params: string[]): Promise<void> {
    this.command.outputHelp({ error: true });
    return Promise.reject(
      usageError(
        params.length > 0
          ? `unknown command '${params[0]}' (one of: reset-password)`
          : 'missing command (reset-password)',
      ),
    );
  }
}

/** The whole of stdin, without one trailing newline (`echo pw |` and a here-string add one). */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}
