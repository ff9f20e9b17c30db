/**
 * The hidden temp names of the backups folder, `.mc-tmp-<hex>.db.part`: list() never shows them and start-up sweeps
 * them. No imports, so the snapshot worker can check a name with the same definition BackupFiles makes them by.
 */
export const TEMP_PREFIX = '.mc-tmp-';
export const TEMP_SUFFIX = '.db.part';
/** A temp database itself: never a published backup, the live database or one of SQLite's files beside it. */
export const TEMP_MAIN_PATTERN = /^\.mc-tmp-[0-9a-f]{16,64}\.db\.part$/;
/** A temp database or one of SQLite's files beside it (what the start-up sweep removes). */
export const TEMP_ANY_PATTERN = /^\.mc-tmp-[0-9a-f]{16,64}\.db\.part(?:-journal|-wal|-shm)?$/;
