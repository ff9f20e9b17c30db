import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { Dirent } from 'node:fs';
import { formatBackupName } from './backup-name';
import { TEMP_ANY_PATTERN } from './temp-name';

/** Whatever wrote the temp file, what gets a backup's name is private. */
const FILE_MODE = 0o600;
/** Far above anything one second can produce; only guards against looping forever on a broken filesystem. */
const MAX_SEQ = 10_000;

/** What publishing and sweeping need of BackupFiles (kept narrow so this file does not import it back). */
export interface TempFolder {
  readonly root: string;
  readonly active: Set<string>;
  resolveInside(name: string): string;
  assertTemp(tmp: string): string;
  isActive(entryName: string): boolean;
  invalidate(): void;
  fsyncDir(): Promise<void>;
  readEntries(): Promise<Dirent[]>;
  highestSeq(prefix: string, now: Date): Promise<number>;
}

function errCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Deletes what a killed snapshot left behind. Call at start-up, before any snapshot of this process starts. */
export async function removeLeftovers(files: TempFolder): Promise<string[]> {
  const entries = await files.readEntries();
  const removed: string[] = [];
  for (const entry of entries) {
    if (!TEMP_ANY_PATTERN.test(entry.name) || files.isActive(entry.name)) {
      continue;
    }
    const full = path.join(files.root, entry.name);
    const st = await fsp.lstat(full).catch(() => null);
    if (!st?.isFile()) {
      continue;
    }
    try {
      await fsp.unlink(full);
      removed.push(entry.name);
    } catch (err) {
      if (errCode(err) !== 'ENOENT') {
        throw err;
      }
    }
  }
  if (removed.length > 0) {
    await files.fsyncDir();
  }
  return removed;
}

/**
 * Gives the complete temp file `tmp` the first free `<prefix>…[-seq].db` name for `now` and removes the temp
 * name. A hard link fails on an existing name, so nothing is ever replaced. Returns the new name. On failure the
 * temp file is left for the caller to discard.
 */
export async function publishNew(files: TempFolder, tmp: string, prefix: string, now: Date): Promise<string> {
  // Whatever wrote the temp file, what gets a backup's name is private.
  await fsp.chmod(tmp, FILE_MODE);
  files.assertTemp(tmp);
  // Start above every name still on disk for this second: a name freed by a delete or a prune must not be
  // reused, or the newest backup would sort as the oldest of its second (and the next prune would take it).
  for (let seq = (await files.highestSeq(prefix, now)) + 1; seq <= MAX_SEQ; seq++) {
    const name = formatBackupName(prefix, now, seq);
    const final = files.resolveInside(name);
    try {
      await fsp.link(tmp, final);
      files.invalidate();
    } catch (err) {
      if (errCode(err) === 'EEXIST') {
        continue;
      }
      throw err;
    }
    try {
      await fsp.unlink(tmp);
      await files.fsyncDir();
    } catch (err) {
      // The name is ours (the link just created it); take it back so a failure leaves no `.db` behind.
      await fsp.unlink(final).catch(() => undefined);
      throw err;
    }
    return name;
  }
  throw new Error('No free backup name for this second');
}

/**
 * Gives the complete temp file `tmp` exactly the backup name `name` (a copy pulled from off-site keeps its own
 * name). False when that name is taken: nothing is replaced, and the temp file is left for the caller.
 */
export async function publishAs(files: TempFolder, tmp: string, name: string): Promise<boolean> {
  await fsp.chmod(tmp, FILE_MODE);
  files.assertTemp(tmp);
  const final = files.resolveInside(name);
  try {
    await fsp.link(tmp, final);
  } catch (err) {
    if (errCode(err) === 'EEXIST') {
      return false;
    }
    throw err;
  }
  try {
    await fsp.unlink(tmp);
    files.active.delete(path.basename(tmp));
    await files.fsyncDir();
  } catch (err) {
    await fsp.unlink(final).catch(() => undefined);
    throw err;
  }
  return true;
}

/** A `-wal` or `-journal` beside `file`: SQLite would read more than its bytes (a `-shm` alone changes nothing). */
export async function hasJournalBeside(file: string): Promise<boolean> {
  const found = await Promise.all(
    ['-wal', '-journal'].map((s) =>
      fsp.lstat(file + s).then(
        () => true,
        () => false,
      ),
    ),
  );
  return found.some(Boolean);
}
