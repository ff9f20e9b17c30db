import Database from 'better-sqlite3';

/** How SQLite's own parser reads a table's CREATE text: a b-tree table, a virtual table, or neither. */
export type TableKind = 'ordinary' | 'virtual' | 'unknown';

/** One row of `sqlite_schema`, with what SQLite reports about it (never what a pattern guesses from the text). */
export interface SchemaFact {
  type: string;
  name: string;
  tbl_name: string;
  sql: string | null;
  /** Tables only. */
  tableKind?: TableKind;
  /**
   * Indexes only: `PRAGMA index_list` origin of the index on its table: `c` for CREATE INDEX, `u` for a UNIQUE
   * constraint, `pk` for a PRIMARY KEY; null when no table lists it.
   */
  origin?: string | null;
  /** Ordinary tables only: the tables their foreign keys reference (`PRAGMA foreign_key_list`). */
  references?: string[];
}

/**
 * Tables SQLite creates itself. Every other `sqlite_` name in a file was written behind SQLite's back
 * (`writable_schema`) and is compared like any object.
 */
export const SQLITE_INTERNAL_TABLES: ReadonlySet<string> = new Set([
  'sqlite_sequence',
  'sqlite_stat1',
  'sqlite_stat2',
  'sqlite_stat3',
  'sqlite_stat4',
]);

let parser: Database.Database | null = null;

/**
 * Asks SQLite's parser, on a private empty in-memory database, what a CREATE TABLE text makes: the prepared (never
 * run) statement creates a b-tree or a virtual table. Nothing of the file is read, so no module is connected: asking
 * the file itself (`PRAGMA table_list`, `integrity_check`) connects every virtual table and runs its module's code.
 */
export function classifyTableSql(sql: string | null): TableKind {
  if (typeof sql !== 'string') {
    return 'unknown';
  }
  if (parser === null) {
    parser = new Database(':memory:');
    // Only so that the reserved `sqlite_` names SQLite uses for its own tables parse as they do in a file's schema.
    parser.unsafeMode(true);
    parser.pragma('writable_schema = ON');
  }
  let opcodes: string[];
  try {
    opcodes = (parser.prepare(`EXPLAIN ${sql}`).all() as Array<{ opcode: string }>).map((row) => row.opcode);
  } catch {
    return 'unknown';
  }
  if (opcodes.includes('VCreate')) {
    return 'virtual';
  }
  return opcodes.includes('CreateBtree') ? 'ordinary' : 'unknown';
}

/**
 * The file's `sqlite_schema` with SQLite's facts about each object. Safe on an untrusted file: only ordinary tables
 * are asked about (index_list, foreign_key_list look at the table's definition, not its rows), so no virtual table
 * is ever connected.
 */
export function readSchemaFacts(db: Database.Database): SchemaFact[] {
  const rows = db.prepare('SELECT type, name, tbl_name, sql FROM sqlite_schema').all() as SchemaFact[];
  const origins = new Map<string, string>();
  for (const row of rows) {
    if (row.type !== 'table') {
      continue;
    }
    row.tableKind = classifyTableSql(row.sql);
    if (row.tableKind !== 'ordinary') {
      continue;
    }
    for (const index of db.prepare('SELECT name, origin FROM pragma_index_list(?)').all(row.name) as Array<{
      name: string;
      origin: string;
    }>) {
      origins.set(index.name, index.origin);
    }
    const targets = db.prepare('SELECT DISTINCT "table" AS t FROM pragma_foreign_key_list(?)').all(row.name) as Array<{
      t: string;
    }>;
    row.references = targets.map((target) => target.t);
  }
  for (const row of rows) {
    if (row.type === 'index') {
      row.origin = origins.get(row.name) ?? null;
    }
  }
  return rows;
}

/** Names of the tables whose CREATE text SQLite parses as a virtual table, or cannot parse as a b-tree table. */
export function notOrdinaryTables(facts: readonly SchemaFact[]): string[] {
  return facts
    .filter((fact) => fact.type === 'table' && (fact.tableKind ?? classifyTableSql(fact.sql)) !== 'ordinary')
    .map((fact) => fact.name);
}
