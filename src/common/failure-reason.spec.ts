import { classifyFailure } from './failure-reason';

function errorWith(code: string | undefined, message: string): Error {
  return Object.assign(new Error(message), code === undefined ? {} : { code });
}

describe('classifyFailure', () => {
  it.each([
    [errorWith('ENOSPC', 'ENOSPC: no space left on device, write'), 'disk_full'],
    [errorWith('SQLITE_FULL', 'database or disk is full'), 'disk_full'],
    [errorWith(undefined, 'database or disk is full'), 'disk_full'],
    [errorWith('SQLITE_BUSY', 'database is locked'), 'busy'],
    [errorWith(undefined, 'Backup did not complete: source database stayed busy'), 'busy'],
    [errorWith('SQLITE_LOCKED_SHAREDCACHE', 'database table is locked'), 'busy'],
    [errorWith(undefined, 'Backup copy failed quick_check'), 'integrity'],
    [errorWith('SQLITE_CORRUPT', 'database disk image is malformed'), 'integrity'],
    [errorWith('SQLITE_NOTADB', 'file is not a database'), 'integrity'],
    [errorWith('EIO', 'EIO: i/o error, fsync'), 'io'],
    [errorWith('ENOTDIR', "ENOTDIR: not a directory, open '/srv/mc/backups/x'"), 'io'],
    [errorWith('SQLITE_IOERR_WRITE', 'disk I/O error'), 'io'],
    [errorWith('SQLITE_CANTOPEN', 'unable to open database file'), 'io'],
    [new TypeError("Cannot read properties of undefined (reading 'x')"), 'unknown'],
    ['a string', 'unknown'],
    [null, 'unknown'],
  ])('should classify %p as %s', (error, reason) => {
    expect(classifyFailure(error).reason).toBe(reason);
  });

  it('should give messages that quote nothing from the error', () => {
    const failure = classifyFailure(errorWith('ENOSPC', "ENOSPC: no space left on device, write '/srv/mc/backups/x'"));
    expect(failure).toEqual({ reason: 'disk_full', message: 'no space left in the backups folder' });
  });
});
