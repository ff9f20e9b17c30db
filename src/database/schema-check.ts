import { DataSource, type MigrationInterface } from 'typeorm';
import { MIGRATIONS } from './migrations';
import { classifyTableSql, SQLITE_INTERNAL_TABLES, type SchemaFact } from './schema-facts';

/**
 * One row of a database's `sqlite_schema`, as the inspect worker reads it from a file, with what SQLite reports of
 * it (schema-facts.ts). Rows without those facts (the reference schema) are judged by SQLite's parser here.
 */
export type SchemaObject = SchemaFact;

/** What a file's schema is, compared with the schema this application creates at the file's migration version. */
export interface SchemaVerdict {
  /** Empty when the file may become this application's database; each entry names an offending object. */
  problems: string[];
  /** Tables this application does not know, with nothing executable attached: accepted, carried with their data. */
  foreignTables: string[];
}

type MigrationClass = new () => MigrationInterface;

/**
 * A migration's timestamp, read the way TypeORM reads it: the last 13 digits of its name (`InitialSchema1764000000000`).
 */
export function migrationTimestamp(migration: MigrationClass): number {
  const instance = new migration();
  const name = instance.name ?? migration.name;
  const match = /(\d{13})$/.exec(name);
  if (!match) {
    throw new Error(`Migration ${name} has no 13-digit timestamp at the end of its name`);
  }
  return Number(match[1]);
}

/** Every schema version this build can produce, oldest first: one per migration. */
export function knownSchemaVersions(migrations: readonly MigrationClass[] = MIGRATIONS): number[] {
  return migrations.map(migrationTimestamp).sort((a, b) => a - b);
}

const references = new Map<string, Promise<SchemaObject[]>>();

/**
 * The `sqlite_schema` this application creates at `version`: the app's own migrations up to and including it, run
 * by TypeORM exactly as at start-up, on a fresh in-memory database. Cached per version (a few ms each, once). New
 * migrations are picked up from the MIGRATIONS list with no change here.
 */
export function referenceSchema(
  version: number,
  migrations: readonly MigrationClass[] = MIGRATIONS,
): Promise<SchemaObject[]> {
  const subset = migrations.filter((m) => migrationTimestamp(m) <= version);
  const key = `${version}:${subset.map((m) => m.name).join(',')}`;
  let cached = references.get(key);
  if (!cached) {
    cached = buildReference(subset);
    // A failure must not be cached: the next check tries again.
    cached.catch(() => references.delete(key));
    references.set(key, cached);
  }
  return cached;
}

async function buildReference(migrations: MigrationClass[]): Promise<SchemaObject[]> {
  const dataSource = new DataSource({
    type: 'better-sqlite3',
    database: ':memory:',
    migrations,
    migrationsTransactionMode: 'each',
    logging: false,
  });
  await dataSource.initialize();
  try {
    await dataSource.runMigrations({ transaction: 'each' });
    return await dataSource.query<SchemaObject[]>('SELECT type, name, tbl_name, sql FROM sqlite_schema');
  } finally {
    await dataSource.destroy();
  }
}

/**
 * Compares a file's schema (at migration `version`) with this build's reference for that version. Never throws for
 * a hostile file: every finding is a problem naming the object. Internal `sqlite_*` objects (sqlite_sequence,
 * sqlite_stat1, automatic indexes) are SQLite's own and not compared.
 */
export async function checkSchema(objects: readonly SchemaObject[], version: number): Promise<SchemaVerdict> {
  const versions = knownSchemaVersions();
  if (!versions.includes(version)) {
    return {
      problems: [`schema version ${safeNumber(version)} is not one this application ever created`],
      foreignTables: [],
    };
  }
  const [reference, latest] = await Promise.all([
    referenceSchema(version),
    referenceSchema(versions[versions.length - 1]),
  ]);
  return compareSchema(objects, reference, latest);
}

/**
 * The rules:
 * - refused: a trigger or view the application does not create (they run code on every write or read), a virtual
 *   table (its module is code; decided by SQLite's parser, never by a pattern on the text), any change to an
 *   application table or index (its normalized CREATE text differs), an index the application does not create on one
 *   of its tables (whatever its name: SQLite's own indexes are told by their `index_list` origin), a missing
 *   application table or index, a foreign table whose name a later migration of this build creates (the migration
 *   would fail on restore), and a foreign table whose foreign keys reference an application table (restoring it
 *   could never finish: the application's own writes would break the reference);
 * - accepted: tables the application does not know, and their own indexes, listed as `foreignTables`.
 */
export function compareSchema(
  objects: readonly SchemaObject[],
  reference: readonly SchemaObject[],
  latest: readonly SchemaObject[] = reference,
): SchemaVerdict {
  const problems: string[] = [];
  const foreignTables: string[] = [];
  const expected = new Map(comparable(reference).map((o) => [key(o), o]));
  const appTables = new Set(
    comparable(reference)
      .filter((o) => o.type === 'table')
      .map((o) => lower(o.name)),
  );
  const laterTables = new Set(
    comparable(latest)
      .filter((o) => o.type === 'table' && !appTables.has(lower(o.name)))
      .map((o) => lower(o.name)),
  );
  const seen = new Set<string>();
  for (const object of comparable(objects)) {
    const k = key(object);
    seen.add(k);
    const wanted = expected.get(k);
    const what = `${object.type} ${quote(object.name)}`;
    const tableKind = object.type === 'table' ? (object.tableKind ?? classifyTableSql(object.sql)) : null;
    if (tableKind === 'virtual') {
      problems.push(`virtual table ${quote(object.name)} is not accepted`);
      continue;
    }
    if (tableKind === 'unknown') {
      problems.push(`table ${quote(object.name)} is not one SQLite reads as an ordinary table`);
      continue;
    }
    if (wanted) {
      if (normalizeSql(wanted.sql) !== normalizeSql(object.sql) || lower(wanted.tbl_name) !== lower(object.tbl_name)) {
        problems.push(`${what} differs from the one this application creates`);
      }
      continue;
    }
    switch (object.type) {
      case 'trigger':
      case 'view':
        problems.push(`${what} is not created by this application`);
        break;
      case 'index':
        if (appTables.has(lower(object.tbl_name))) {
          problems.push(`${what} on application table ${quote(object.tbl_name)} is not created by this application`);
        }
        break;
      case 'table': {
        const referenced = (object.references ?? []).filter(
          (t) => appTables.has(lower(t)) || laterTables.has(lower(t)),
        );
        if (laterTables.has(lower(object.name))) {
          problems.push(`table ${quote(object.name)} has the name of a table this application creates later`);
        } else if (referenced.length > 0) {
          problems.push(
            `table ${quote(object.name)} references application table ${referenced.map(quote).join(', ')} ` +
              '(its restore could never finish)',
          );
        } else {
          foreignTables.push(object.name);
        }
        break;
      }
      default:
        problems.push(`${what} is not created by this application`);
    }
  }
  for (const [k, wanted] of expected) {
    if (!seen.has(k)) {
      problems.push(`${wanted.type} ${quote(wanted.name)} is missing`);
    }
  }
  return { problems, foreignTables: foreignTables.sort() };
}

/**
 * Objects SQLite manages itself are not part of the comparison: its internal tables, and the indexes it makes for a
 * UNIQUE or PRIMARY KEY constraint (implied by the table's own CREATE text, which is compared). Known by what SQLite
 * reports (`index_list` origin `u`/`pk`), not by the `sqlite_autoindex_` name, which `writable_schema` can give any
 * index; rows without an origin (the reference, made by this application) by their missing CREATE text.
 */
function comparable(objects: readonly SchemaObject[]): SchemaObject[] {
  return objects.filter((o) => {
    if (o.type === 'table') {
      return !(SQLITE_INTERNAL_TABLES.has(lower(o.name)) && (o.tableKind ?? classifyTableSql(o.sql)) === 'ordinary');
    }
    if (o.type === 'index') {
      return o.origin === undefined ? o.sql !== null : o.origin !== 'u' && o.origin !== 'pk';
    }
    return true;
  });
}

function key(object: SchemaObject): string {
  return `${object.type}\u0000${lower(object.name)}`;
}

function lower(name: string): string {
  return String(name).toLowerCase();
}

/**
 * CREATE text with runs of whitespace collapsed and none around punctuation, so the same DDL indented differently
 * compares equal. Nothing else is normalized: a changed word, quote or literal is a change.
 */
export function normalizeSql(sql: string | null): string {
  return (sql ?? '')
    .replace(/\s+/g, ' ')
    .replace(/\s*([(),;])\s*/g, '$1')
    .trim();
}

/** An object name from a file, safe to put in a message: printable ASCII, bounded. */
export function quote(name: string): string {
  const text = String(name);
  const safe = text.replace(/[^\x20-\x7e]/g, '?').slice(0, 64);
  return JSON.stringify(safe + (text.length > 64 ? '…' : ''));
}

function safeNumber(value: number): string {
  return Number.isFinite(value) ? String(value) : 'unknown';
}
