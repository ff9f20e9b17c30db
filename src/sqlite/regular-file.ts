import * as fs from 'node:fs';

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
