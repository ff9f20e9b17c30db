/**
 * A tripwire for SQLite's "How To Corrupt" §2.2, loaded for every e2e spec (jest setupFilesAfterEnv).
 *
 * On POSIX, closing ANY descriptor of a file drops every lock the whole process holds on it, so a raw open of the
 * live database (or its -wal/-shm/-journal) anywhere in the service's process silently takes away the locks of
 * the service's own SQLite connection: other processes then believe they are alone, checkpoint and delete the WAL
 * under it, and acknowledged writes are lost. Two independent checks fail the test in which that happens:
 *  1. every fs function that opens a file descriptor is wrapped: naming a live database file is a violation,
 *     whatever the test or the service wanted it for (worker threads have their own fs and escape this one);
 *     Worker threads have their own fs: snapshot.ts loads this same file into every worker it starts under
 *     ts-jest (MC_LIVE_DB_TRIPWIRE), where a violation throws at once and fails the operation;
 *  2. after each test, while an app is running on a database, this process must still hold a lock on that
 *     database file in /proc/locks: the effect itself, whoever caused it.
 */
// The real module object (a namespace import is a read-only copy whose functions cannot be replaced).
// eslint-disable-next-line @typescript-eslint/no-require-imports
import fs = require('node:fs');
import * as path from 'node:path';
import { isMainThread } from 'node:worker_threads';

process.env.MC_LIVE_DB_TRIPWIRE = __filename;

let readingClosedDatabase = false;

/**
 * The bytes of a database file no connection of this process has open (its app was closed): a test comparing a
 * closed database before and after an action it expects to leave the file alone. Never for a running app's file.
 */
export function readClosedDatabase(file: string): Buffer {
  readingClosedDatabase = true;
  try {
    return fs.readFileSync(file);
  } finally {
    readingClosedDatabase = false;
  }
}

const LIVE_NAME = /^mission-control\.db(-wal|-shm|-journal)?$/;
const watched = new Set<string>();
const violations: string[] = [];

/** Called by startTestApp: `dbPath` is a live database for as long as its app runs. */
export function watchLiveDatabase(dbPath: string): void {
  watched.add(path.resolve(dbPath));
}

export function unwatchLiveDatabase(dbPath: string): void {
  watched.delete(path.resolve(dbPath));
}

/**
 * The replication WAL reader opens the -wal read-only through its own descriptor: SQLite holds no POSIX lock on
 * the -wal (only on the database and its -shm), so closing that descriptor cannot drop one. Allowed for `open`
 * with read-only flags only; check 2 below still proves the database's locks survive.
 */
function readOnlyWal(target: unknown, flags: unknown): boolean {
  const name = typeof target === 'string' ? target : '';
  const readOnly = flags === undefined || flags === 'r' || (typeof flags === 'number' && (flags & 3) === 0);
  return name.endsWith('-wal') && readOnly;
}

function isLive(target: unknown): boolean {
  if (typeof target !== 'string' && !(target instanceof URL) && !Buffer.isBuffer(target)) {
    return false;
  }
  const file = path.resolve(target instanceof URL ? target.pathname : target.toString());
  if (LIVE_NAME.test(path.basename(file))) {
    return true;
  }
  for (const db of watched) {
    if (file === db || file === `${db}-wal` || file === `${db}-shm` || file === `${db}-journal`) {
      return true;
    }
  }
  return false;
}

type AnyFn = (...args: unknown[]) => unknown;

function wrap(owner: Record<string, unknown>, name: string, label: string, argIndexes: number[] = [0]): void {
  const original = owner[name] as AnyFn | undefined;
  if (typeof original !== 'function' || (original as { tripwire?: boolean }).tripwire) {
    return;
  }
  const wrapped = function (this: unknown, ...args: unknown[]): unknown {
    if (readingClosedDatabase) {
      return original.apply(this, args);
    }
    for (const index of argIndexes) {
      if ((name === 'openSync' || name === 'open') && readOnlyWal(args[index], args[1])) {
        continue;
      }
      if (isLive(args[index])) {
        const stack = (new Error().stack ?? '').split('\n').slice(2, 8).join('\n');
        const message = `${label}(${String(args[index])}) opened a live database file outside SQLite`;
        if (!isMainThread) {
          throw new Error(`Live database tripwire (worker thread): ${message}`);
        }
        violations.push(`${message}\n${stack}`);
      }
    }
    return original.apply(this, args);
  };
  (wrapped as { tripwire?: boolean }).tripwire = true;
  owner[name] = wrapped;
}

const fsRecord = fs as unknown as Record<string, unknown>;
for (const name of [
  'openSync',
  'open',
  'readFileSync',
  'readFile',
  'writeFileSync',
  'writeFile',
  'appendFileSync',
  'appendFile',
  'createReadStream',
  'createWriteStream',
  'truncateSync',
  'truncate',
]) {
  wrap(fsRecord, name, `fs.${name}`);
}
for (const name of ['copyFileSync', 'copyFile', 'cpSync', 'cp']) {
  wrap(fsRecord, name, `fs.${name}`, [0, 1]);
}
const promisesRecord = fs.promises as unknown as Record<string, unknown>;
for (const name of ['open', 'readFile', 'writeFile', 'appendFile', 'truncate']) {
  wrap(promisesRecord, name, `fsp.${name}`);
}
for (const name of ['copyFile', 'cp']) {
  wrap(promisesRecord, name, `fsp.${name}`, [0, 1]);
}

/** The locks this process holds on `file`, as /proc/locks lists them (Linux). Null where there is no /proc/locks. */
export function locksHeld(file: string): string[] | null {
  let table: string;
  try {
    // /proc/locks is not a database file: reading it raw is fine.
    table = fs.readFileSync('/proc/locks', 'utf8');
  } catch {
    return null;
  }
  let inode: number;
  try {
    inode = fs.statSync(file).ino;
  } catch {
    return [];
  }
  return table.split('\n').filter((line) => {
    const fields = line.trim().split(/\s+/);
    // "1: POSIX  ADVISORY  READ 1234 fe:00:2146724 1073741826 1073742335"
    return fields[4] === String(process.pid) && fields[5]?.endsWith(`:${inode}`);
  });
}

const jestAfterEach = (globalThis as { afterEach?: (fn: () => void) => void }).afterEach;
jestAfterEach?.(() => {
  const problems = violations.splice(0);
  for (const db of watched) {
    const held = locksHeld(db);
    if (held !== null && held.length === 0 && fs.existsSync(db)) {
      problems.push(`this process holds no lock on the live database ${db}: its SQLite locks were dropped`);
    }
  }
  if (problems.length > 0) {
    throw new Error(`Live database tripwire:\n${problems.join('\n\n')}`);
  }
});
