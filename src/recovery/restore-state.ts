import Database from 'better-sqlite3';
import { type CarriedRows, readCarried, writeCarried } from './carried-state';

type Row = Record<string, unknown>;

/**
 * What a restore keeps from the database it replaces, read under the live database's write lock (online) or from
 * the safety copy (offline, and when finishing a restore after a crash): the two are the same state.
 * - the carried tables (manifests, scheduler state): they describe files and runs that exist now;
 * - the whole audit log: it is append-only across restores, or restoring an old backup would erase the record of
 *   everything done since, including by whoever restores it;
 * - users and settings, only to report what the restore changed (the restored data's own win).
 */
export interface LiveState {
  carried: CarriedRows;
  audit: Row[];
  /** The highest audit id: rows above it were written after this state was read. */
  auditSeq: number;
  users: Array<{ username: string; role: string; password_hash: string }>;
  settings: Map<string, string>;
}

export interface RestoreChanges {
  settings_changed: string[];
  users_changed: boolean;
  users_added: string[];
  users_removed: string[];
}

export interface AuditRow {
  action: string;
  actor: string;
  actorId: number | null;
  targetId: string;
  detail: Record<string, unknown>;
  ip: string | null;
  userAgent: string | null;
  createdAt: number;
}

export interface FinishOptions {
  /** Written into the audit event's detail; {@link restoreRecorded} looks for it. */
  restoreId: string;
  /** The highest audit id in the data that was copied in: rows above it arrived after the copy committed. */
  copiedAuditSeq: number;
  /** Audit rows written after `pre` was read and lost by the copy (a rollback's failed attempt): appended. */
  extraAudit?: Row[];
  /** Undoing a restore puts the old sessions back as they were; a restore ends all but the caller's. */
  keepSessions: boolean;
  caller: { username: string; tokenHash: string; expiresAt: number } | null;
  now: number;
  event: AuditRow;
}

function hasTable(db: Database.Database, table: string): boolean {
  return db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(table) !== undefined;
}

function columnsOf(db: Database.Database, table: string): Set<string> {
  return new Set((db.pragma(`table_info("${table}")`) as Array<{ name: string }>).map((c) => c.name));
}

export function readLiveState(db: Database.Database): LiveState {
  const audit = hasTable(db, 'audit_log') ? (db.prepare('SELECT * FROM audit_log ORDER BY id').all() as Row[]) : [];
  return { carried: readCarried(db), audit, auditSeq: maxAuditId(db), ...readPeople(db) };
}

/** Users and settings only: what a restore reports as changed. */
function readPeople(db: Database.Database): Pick<LiveState, 'users' | 'settings'> {
  const users = hasTable(db, 'users')
    ? (db.prepare('SELECT username, role, password_hash FROM users').all() as LiveState['users'])
    : [];
  const settings = hasTable(db, 'settings')
    ? new Map(
        (db.prepare('SELECT key, value FROM settings').all() as Array<{ key: string; value: string }>).map((r) => [
          r.key,
          r.value,
        ]),
      )
    : new Map<string, string>();
  return { users, settings };
}

/** The same, from a database file that is not live (a safety copy), opened read-only. */
export function readLiveStateFromFile(file: string): LiveState {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    db.pragma('trusted_schema = OFF');
    return readLiveState(db);
  } finally {
    db.close();
  }
}

export function maxAuditId(db: Database.Database): number {
  if (!hasTable(db, 'audit_log')) {
    return 0;
  }
  return Number((db.prepare('SELECT COALESCE(MAX(id), 0) AS n FROM audit_log').get() as { n: number }).n);
}

/** The highest audit id of a database file that is not live (a backup about to be copied in). */
export function maxAuditIdOfFile(file: string): number {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    db.pragma('trusted_schema = OFF');
    return maxAuditId(db);
  } finally {
    db.close();
  }
}

/** Audit rows of the live database that `pre` does not hold (written since it was read). */
export function auditRowsSince(db: Database.Database, pre: LiveState): Row[] {
  const known = new Set(pre.audit.map((row) => JSON.stringify(row)));
  return (db.prepare('SELECT * FROM audit_log ORDER BY id').all() as Row[]).filter(
    (row) => !known.has(JSON.stringify(row)),
  );
}

/** Whether restore `restoreId`'s `action` event is already in the database (a finish that ran before a crash). */
export function restoreRecorded(db: Database.Database, restoreId: string, action: string): boolean {
  return (
    db
      .prepare("SELECT 1 FROM audit_log WHERE action = ? AND json_extract(detail, '$.restore_id') = ?")
      .get(action, restoreId) !== undefined
  );
}

/**
 * Everything a restore writes into the database after the copy, as ONE synchronous transaction on the live
 * connection (nothing else in this process can interleave with it): the carried tables, the audit log merged back
 * (the old log, then whatever arrived since the copy, then this restore's own event), and the sessions. Running it
 * twice gives the same result, so a crash anywhere in between is finished by running it again. It begins
 * IMMEDIATE: it reads before it writes, and a deferred transaction that has read cannot wait for another process's
 * write lock (SQLite answers SQLITE_BUSY at once), which failed a restore beside a busy writer.
 */
export function finishRestore(db: Database.Database, pre: LiveState, options: FinishOptions): RestoreChanges {
  // Durable before the caller removes the journal: the live connection runs WAL at synchronous=NORMAL, whose commits
  // are not fsynced, and a lost finish with no journal left would lose the merged audit log for good.
  const synchronous = Number(db.pragma('synchronous', { simple: true }));
  db.pragma('synchronous = FULL');
  try {
    return finishTransaction(db, pre, options);
  } finally {
    db.pragma(`synchronous = ${synchronous}`);
  }
}

function finishTransaction(db: Database.Database, pre: LiveState, options: FinishOptions): RestoreChanges {
  return db
    .transaction((): RestoreChanges => {
      writeCarried(db, pre.carried);
      mergeAudit(db, pre, options);
      if (!options.keepSessions) {
        replaceSessions(db, options);
      }
      const changes = changesBetween(pre, readPeople(db));
      if (!restoreRecorded(db, options.restoreId, options.event.action)) {
        // What the restore changed goes into its audit event too (users that reappear or vanish, settings).
        const detail = {
          ...options.event.detail,
          ...(options.keepSessions ? {} : changes),
          restore_id: options.restoreId,
        };
        insertAudit(db, { ...options.event, detail });
      }
      return changes;
    })
    .immediate();
}

function mergeAudit(db: Database.Database, pre: LiveState, options: FinishOptions): void {
  const columns = columnsOf(db, 'audit_log');
  if (columns.size === 0) {
    return;
  }
  const known = new Set(pre.audit.map((row) => JSON.stringify(row)));
  // Rows the copied-in data did not bring, minus the old log's own rows (already merged by an earlier run).
  const arrived = (
    db.prepare('SELECT * FROM audit_log WHERE id > ? ORDER BY id').all(options.copiedAuditSeq) as Row[]
  ).filter((row) => !known.has(JSON.stringify(row)));
  db.prepare('DELETE FROM audit_log').run();
  for (const row of pre.audit) {
    insertRow(db, 'audit_log', columns, row, true);
  }
  for (const row of [...(options.extraAudit ?? []), ...arrived]) {
    if (!known.has(JSON.stringify(row))) {
      insertRow(db, 'audit_log', columns, row, false);
    }
  }
}

function replaceSessions(db: Database.Database, options: FinishOptions): void {
  if (!hasTable(db, 'sessions')) {
    return;
  }
  db.prepare('DELETE FROM sessions').run();
  const caller = options.caller;
  if (caller === null || caller.expiresAt <= options.now) {
    return;
  }
  const admin = db.prepare("SELECT id FROM users WHERE username = ? AND role = 'admin'").get(caller.username) as
    { id: number } | undefined;
  if (admin) {
    db.prepare('INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)').run(
      caller.tokenHash,
      admin.id,
      options.now,
      caller.expiresAt,
    );
  }
}

/** Whether the caller's session made it into the restored data (see replaceSessions). */
export function sessionExists(db: Database.Database, tokenHash: string): boolean {
  return (
    hasTable(db, 'sessions') && db.prepare('SELECT 1 FROM sessions WHERE token_hash = ?').get(tokenHash) !== undefined
  );
}

function insertRow(db: Database.Database, table: string, columns: Set<string>, row: Row, keepId: boolean): void {
  const names = Object.keys(row).filter((c) => columns.has(c) && (keepId || c !== 'id'));
  db.prepare(
    `INSERT INTO "${table}" (${names.map((c) => `"${c}"`).join(', ')}) VALUES (${names.map(() => '?').join(', ')})`,
  ).run(...names.map((c) => row[c]));
}

export function insertAudit(db: Database.Database, event: AuditRow): void {
  db.prepare(
    'INSERT INTO audit_log (action, actor, actor_id, target_type, target_id, detail, ip_address, user_agent, ' +
      'created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
  ).run(
    event.action,
    event.actor,
    event.actorId,
    'backup',
    event.targetId,
    JSON.stringify(event.detail),
    event.ip,
    event.userAgent,
    event.createdAt,
  );
}

export function changesBetween(
  before: Pick<LiveState, 'users' | 'settings'>,
  after: Pick<LiveState, 'users' | 'settings'>,
): RestoreChanges {
  const keys = new Set([...before.settings.keys(), ...after.settings.keys()]);
  const settingsChanged = [...keys].filter((key) => before.settings.get(key) !== after.settings.get(key)).sort();
  const lower = (name: string): string => name.toLowerCase();
  const beforeUsers = new Map(before.users.map((u) => [lower(u.username), u]));
  const afterUsers = new Map(after.users.map((u) => [lower(u.username), u]));
  const added = after.users.filter((u) => !beforeUsers.has(lower(u.username))).map((u) => u.username);
  const removed = before.users.filter((u) => !afterUsers.has(lower(u.username))).map((u) => u.username);
  const altered = after.users.some((u) => {
    const old = beforeUsers.get(lower(u.username));
    return old !== undefined && (old.role !== u.role || old.password_hash !== u.password_hash);
  });
  return {
    settings_changed: settingsChanged,
    users_changed: added.length > 0 || removed.length > 0 || altered,
    users_added: added.sort(),
    users_removed: removed.sort(),
  };
}
