import * as fs from 'node:fs';
import * as path from 'node:path';
import { TEMP_MAIN_PATTERN } from '../backups/temp-name';

/**
 * Opens a file for reading without ever blocking (a FIFO under a backup's name would block a plain open until a
 * writer appears) and without following a symlink, and proves it a regular file through the same descriptor.
 */
export function openRegularFile(file: string): number {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW);
  try {
    if (!fs.fstatSync(fd).isFile()) {
      throw Object.assign(new Error('Not a regular file'), { code: 'NOT_REGULAR' });
    }
    return fd;
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
}

/**
 * Creates a scratch temp file of the backups folder (`.mc-tmp-….db.part`) for writing, and only that: any other name
 * is refused, and O_EXCL never opens a file that already exists, so the descriptor can never be one of a database
 * SQLite holds open (closing it would drop SQLite's locks: sqlite.org/howtocorrupt.html §2.2), nor follow a link
 * planted in its place.
 */
export function createScratchFile(file: string): number {
  if (!TEMP_MAIN_PATTERN.test(path.basename(file))) {
    throw new Error('The byte copy only writes a scratch temp file of the backups folder');
  }
  const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
  return fs.openSync(file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
}
