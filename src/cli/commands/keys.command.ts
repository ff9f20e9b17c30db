import { Command, CommandRunner, Option, SubCommand } from 'nest-commander';
import { randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { Clock } from '../../common/clock';
import { generateIdentityFile } from '../../offsite/age-crypto';
import { CliError, usageError } from '../cli-error';
import { fsyncDir } from '../../common/durable-fs';
import { Terminal } from '../terminal';

@SubCommand({
  name: 'generate',
  description:
    'Write a new age X25519 identity to FILE (mode 0600, never over an existing file) and print its recipient ' +
    '(age1…) for BACKUP_ENCRYPTION_RECIPIENTS. Keep the identity off the server',
})
export class KeysGenerateCommand extends CommandRunner {
  constructor(
    private readonly terminal: Terminal,
    private readonly clock: Clock,
  ) {
    super();
  }

  @Option({ flags: '--out <file>', description: 'where to write the identity file', required: true })
  parseOut(value: string): string {
    return value;
  }

  async run(_params: string[], options: { out?: string } = {}): Promise<void> {
    if (!options.out) {
      throw usageError('--out <file> is required');
    }
    const target = path.resolve(options.out);
    const folder = path.dirname(target);
    const { text, recipient } = await generateIdentityFile(this.clock.now());
    // Temp name beside it, fsync, then a hard link: an existing key file is never replaced.
    const tmp = path.join(folder, `.${path.basename(target)}.${randomBytes(6).toString('hex')}.tmp`);
    const handle = await fsp.open(tmp, 'wx', 0o600).catch((error: unknown) => {
      throw unwritableFolder(error, folder);
    });
    try {
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await fsp.link(tmp, target);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new CliError(`${target} exists; refusing to overwrite a key file`);
      }
      throw error;
    } finally {
      await fsp.unlink(tmp).catch(() => undefined);
    }
    await fsyncDir(path.dirname(target));
    this.terminal.err(`Wrote the identity to ${target} (mode 0600). Keep it off the server, with a second copy.`);
    this.terminal.out(recipient);
  }
}

/**
 * The usual reasons the folder cannot take the key (a USB stick that is not mounted, a typo, a read-only mount), in
 * the operator's terms: the temporary file's name in Node's message would only confuse.
 */
function unwritableFolder(error: unknown, folder: string): unknown {
  const reasons: Record<string, string | undefined> = {
    ENOENT: 'does not exist (is the drive mounted?)',
    ENOTDIR: 'is not a folder',
    EACCES: 'is not writable by this user',
    EPERM: 'is not writable by this user',
    EROFS: 'is on a read-only file system',
  };
  const reason = reasons[(error as NodeJS.ErrnoException).code ?? ''];
  return reason === undefined ? error : new CliError(`${folder} ${reason}; no identity was written`);
}

@Command({
  name: 'keys',
  description: 'Manage the age keys off-site copies are encrypted to',
  subCommands: [KeysGenerateCommand],
})
export class KeysCommand extends CommandRunner {
  run(): Promise<void> {
    this.command.outputHelp({ error: true });
    return Promise.reject(usageError('missing command (one of: generate)'));
  }
}
