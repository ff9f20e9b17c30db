import { CommandRunner, Option, SubCommand } from 'nest-commander';
import { ApiError } from '../../common/api-error';
import { RemoteService } from '../../offsite/remote.service';
import { AppSession } from '../app-session';
import { CLI_ACTOR, CLI_META } from '../cli-actor';
import { CliError, cliBackupName, usageError } from '../cli-error';
import { formatBytes, formatTable, formatUtc } from '../format';
import { RemoteRestore } from '../remote-restore';
import { Terminal } from '../terminal';

/** Copies `remote list` shows unless told otherwise: each one not uploaded from here costs a manifest read. */
const DEFAULT_LIST_LIMIT = 50;

@SubCommand({ name: 'list', description: 'List the off-site copies in the bucket, newest first (times in UTC)' })
export class RemoteListCommand extends CommandRunner {
  constructor(
    private readonly remote: RemoteRestore,
    private readonly terminal: Terminal,
  ) {
    super();
  }

  @Option({ flags: '--json', description: 'print JSON: { backups: [...], bucket, prefix, total }' })
  parseJson(): boolean {
    return true;
  }

  @Option({ flags: '--limit <n>', description: `show the newest n copies (default ${DEFAULT_LIST_LIMIT})` })
  parseLimit(value: string): number {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > 100_000) {
      throw usageError('--limit must be a whole number from 1 to 100000');
    }
    return n;
  }

  @Option({ flags: '--all', description: 'show every copy (reads the manifest of each one not uploaded from here)' })
  parseAll(): boolean {
    return true;
  }

  async run(_params: string[], options: { json?: boolean; limit?: number; all?: boolean } = {}): Promise<void> {
    const listing = await this.remote.list(options.all ? undefined : (options.limit ?? DEFAULT_LIST_LIMIT));
    if (options.json) {
      this.terminal.out(JSON.stringify(listing, null, 2));
      return;
    }
    if (listing.backups.length === 0) {
      this.terminal.out(`No off-site copies under ${listing.prefix} in bucket ${listing.bucket}`);
      return;
    }
    const rows = listing.backups.map((b) => [
      b.name,
      b.size === null ? '-' : formatBytes(b.size),
      b.encrypted ? 'age' : 'plain',
      formatUtc(b.uploaded_at),
      b.sha256 === null ? '-' : b.sha256.slice(0, 12),
    ]);
    this.terminal.out(formatTable([['NAME', 'SIZE', 'STORED', 'UPLOADED (UTC)', 'SHA256'], ...rows]));
    const shown = listing.backups.length;
    this.terminal.out(
      shown < listing.total
        ? `\nThe newest ${shown} of ${listing.total} copies in ${listing.bucket}/${listing.prefix} (--limit N or --all)`
        : `\n${shown} copy(ies) in ${listing.bucket}/${listing.prefix}`,
    );
  }
}

@SubCommand({
  name: 'pull',
  arguments: '<name>',
  description:
    'Download an off-site copy into the backups folder (decrypted and checked), like POST /api/backup/remote/pull',
  argsDescription: { name: 'backup file name, e.g. mc-backup-2026-01-01_03-00-00.db' },
})
export class RemotePullCommand extends CommandRunner {
  constructor(
    private readonly session: AppSession,
    private readonly terminal: Terminal,
  ) {
    super();
  }

  async run([rawName]: string[]): Promise<void> {
    const name = cliBackupName(rawName);
    const pulled = await this.session.run(async (app) => {
      try {
        return await app.get(RemoteService).pull(name, CLI_ACTOR, CLI_META);
      } catch (error) {
        if (error instanceof ApiError) {
          const body = error.getResponse() as { error: string; reason?: string };
          throw new CliError(body.reason ? `${body.error}: ${body.reason}` : body.error);
        }
        throw error;
      }
    });
    this.terminal.out(
      `Pulled ${pulled.backup.name} (${formatBytes(pulled.backup.size)}); restore it with \`backups restore ${pulled.backup.name}\``,
    );
  }
}

@SubCommand({
  name: 'remote',
  description: 'Off-site copies in the S3-compatible bucket: list, pull',
  subCommands: [RemoteListCommand, RemotePullCommand],
})
export class RemoteCommand extends CommandRunner {
  run(): Promise<void> {
    this.command.outputHelp({ error: true });
    return Promise.reject(usageError('missing command (one of: list, pull)'));
  }
}
