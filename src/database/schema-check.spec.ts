import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { DataSource } from 'typeorm';
import { MIGRATIONS, SCHEMA_VERSION } from './migrations';
import { readEveryTable } from './read-every-table';
import { readSchemaFacts } from './schema-facts';
import {
  checkSchema,
  compareSchema,
  knownSchemaVersions,
  normalizeSql,
  quote,
  referenceSchema,
  type SchemaObject,
} from './schema-check';

/** A database file made exactly as the service makes its live database: TypeORM running MIGRATIONS. */
async function appDatabase(file: string, upTo = SCHEMA_VERSION): Promise<void> {
  const all = knownSchemaVersions();
  const dataSource = new DataSource({
    type: 'better-sqlite3',
    database: file,
    migrations: MIGRATIONS.filter((_m, i) => all[i] <= upTo),
    migrationsRun: true,
    logging: false,
  });
  await dataSource.initialize();
  await dataSource.destroy();
}

/** The file's schema as the inspect worker reads it (with SQLite's facts), after `change`. */
function schemaOf(file: string, change?: (db: Database.Database) => void): SchemaObject[] {
  const db = new Database(file);
  try {
    change?.(db);
  } finally {
    db.close();
  }
  const reader = new Database(file, { readonly: true });
  try {
    return readSchemaFacts(reader);
  } finally {
    reader.close();
  }
}

/** Edits sqlite_schema behind SQLite's back, as a hostile file's author can. */
function behindSqlitesBack(db: Database.Database, sql: string): void {
  db.unsafeMode(true);
  db.pragma('writable_schema = ON');
  db.exec(sql);
  db.pragma('writable_schema = OFF');
}

/**
 * A virtual table module written in JavaScript that counts how often SQLite asks it for a table (its xConnect): the
 * proof that reading a file's schema, or every table of it, runs no virtual table's code.
 */
function spyModule(db: Database.Database): { connects: number } {
  const spy = { connects: 0 };
  // The factory form (called on every connect) is better-sqlite3's, though its type declarations omit it.
  const factory = () => {
    spy.connects += 1;
    return {
      columns: ['a'],
      *rows() {
        yield { a: 1 };
      },
    };
  };
  db.table('spy', factory as unknown as Parameters<Database.Database['table']>[1]);
  return spy;
}

describe('schema-check', () => {
  let dir: string;
  let file: string;

  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'mc-schema-'));
    file = path.join(dir, 'app.db');
    await appDatabase(file);
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  describe('knownSchemaVersions', () => {
    it('should list one version per migration, the newest being SCHEMA_VERSION', () => {
      const versions = knownSchemaVersions();
      expect(versions).toHaveLength(MIGRATIONS.length);
      expect(versions[versions.length - 1]).toBe(SCHEMA_VERSION);
    });
  });

  describe('checkSchema', () => {
    it('should accept the schema the service itself creates, with no foreign tables', async () => {
      expect(await checkSchema(schemaOf(file), SCHEMA_VERSION)).toEqual({ problems: [], foreignTables: [] });
    });

    it('should accept an older version of the application against that version’s reference', async () => {
      const old = path.join(dir, 'old.db');
      const first = knownSchemaVersions()[0];
      await appDatabase(old, first);
      expect(await checkSchema(schemaOf(old), first)).toEqual({ problems: [], foreignTables: [] });
      // ...and not against the newest one, where a table is missing.
      const verdict = await checkSchema(schemaOf(old), SCHEMA_VERSION);
      expect(verdict.problems.join('; ')).toMatch(/table "backup_manifests" is missing/);
    });

    it('should accept a foreign table with rows and its own index, and list it', async () => {
      const schema = schemaOf(file, (db) =>
        db.exec(
          'CREATE TABLE inventory (id INTEGER PRIMARY KEY, item TEXT); CREATE INDEX inv_item ON inventory (item);' +
            "INSERT INTO inventory (item) VALUES ('bolt')",
        ),
      );
      expect(await checkSchema(schema, SCHEMA_VERSION)).toEqual({ problems: [], foreignTables: ['inventory'] });
    });

    it('should ignore what SQLite manages itself (ANALYZE statistics)', async () => {
      const schema = schemaOf(file, (db) => db.exec('ANALYZE'));
      expect(await checkSchema(schema, SCHEMA_VERSION)).toEqual({ problems: [], foreignTables: [] });
    });

    it.each([
      [
        'a trigger on an application table',
        'CREATE TRIGGER wipe AFTER INSERT ON audit_log BEGIN DELETE FROM audit_log; END',
        /trigger "wipe" is not created/,
      ],
      [
        'a trigger on a foreign table',
        'CREATE TABLE t (x); CREATE TRIGGER tt AFTER INSERT ON t BEGIN SELECT 1; END',
        /trigger "tt" is not created/,
      ],
      ['a view', 'CREATE VIEW v AS SELECT * FROM users', /view "v" is not created/],
      ['a new column', 'ALTER TABLE users ADD COLUMN backdoor TEXT', /table "users" differs/],
      [
        'an extra index on an application table',
        'CREATE INDEX ix ON users (role)',
        /index "ix" on application table "users"/,
      ],
      ['a dropped index', 'DROP INDEX idx_audit_actor', /index "idx_audit_actor" is missing/],
      ['a dropped table', 'DROP TABLE backup_manifests', /table "backup_manifests" is missing/],
      ['a virtual table', 'CREATE VIRTUAL TABLE rt USING rtree(id, a, b)', /virtual table "rt"/],
    ])('should refuse %s, naming it', async (_label, sql, expected) => {
      const verdict = await checkSchema(
        schemaOf(file, (db) => db.exec(sql)),
        SCHEMA_VERSION,
      );
      expect(verdict.problems.join('; ')).toMatch(expected);
    });

    it('should refuse a trigger that replaces one of the same name with other code', () => {
      const reference: SchemaObject[] = [
        { type: 'table', name: 't', tbl_name: 't', sql: 'CREATE TABLE t (x)' },
        {
          type: 'trigger',
          name: 'keep',
          tbl_name: 't',
          sql: 'CREATE TRIGGER keep AFTER INSERT ON t BEGIN SELECT 1; END',
        },
      ];
      const file = [
        reference[0],
        { ...reference[1], sql: 'CREATE TRIGGER keep AFTER INSERT ON t BEGIN DELETE FROM t; END' },
      ];
      expect(compareSchema(file, reference).problems).toEqual([
        'trigger "keep" differs from the one this application creates',
      ]);
      expect(compareSchema(reference, reference)).toEqual({ problems: [], foreignTables: [] });
    });

    it('should refuse a foreign table named like one a later migration creates', async () => {
      const first = knownSchemaVersions()[0];
      const old = path.join(dir, 'old.db');
      await appDatabase(old, first);
      const schema = schemaOf(old, (db) => db.exec('CREATE TABLE backup_manifests (anything)'));
      expect((await checkSchema(schema, first)).problems.join('; ')).toMatch(
        /"backup_manifests" has the name of a table/,
      );
    });

    it('should refuse a version no migration of this application has', async () => {
      expect((await checkSchema(schemaOf(file), 1765000000000)).problems.join('; ')).toMatch(/schema version/);
    });
  });

  describe('referenceSchema', () => {
    it('should build each version once and cache it', async () => {
      const a = referenceSchema(SCHEMA_VERSION);
      expect(referenceSchema(SCHEMA_VERSION)).toBe(a);
      expect((await a).map((o) => o.name)).toEqual(expect.arrayContaining(['users', 'backup_manifests', 'migrations']));
    });
  });

  describe('normalizeSql', () => {
    it('should ignore indentation but nothing else', () => {
      expect(normalizeSql('CREATE TABLE t (\n  a INTEGER ,\n  b TEXT\n)')).toBe(
        normalizeSql('CREATE TABLE t(a INTEGER,b TEXT)'),
      );
      expect(normalizeSql('CREATE TABLE t (a INTEGER)')).not.toBe(normalizeSql('CREATE TABLE t (a TEXT)'));
    });
  });

  describe('quote', () => {
    it('should make a hostile name printable and bounded', () => {
      expect(quote('a\u0000b\nc')).toBe('"a?b?c"');
      expect(quote('x'.repeat(500)).length).toBeLessThan(80);
    });
  });

  describe('hostile schemas (decided by what SQLite reports)', () => {
    it.each([
      ['a comment between VIRTUAL and TABLE', 'CREATE VIRTUAL/**/TABLE ft USING fts5(a)', 'ft'],
      ['a line break and lower case', 'create virtual\n  table ft using fts5(a)', 'ft'],
      ['a comment after CREATE', 'CREATE /* x */ VIRTUAL TABLE ft USING fts5(a)', 'ft'],
    ])('should refuse a virtual table whose CREATE text has %s, naming it', async (_label, sql, name) => {
      // SQLite stores `CREATE VIRTUAL TABLE …` itself; a hostile author writes any text behind its back.
      const schema = schemaOf(file, (db) => {
        db.exec('CREATE VIRTUAL TABLE ft USING fts5(a)');
        behindSqlitesBack(db, `UPDATE sqlite_schema SET sql = '${sql}' WHERE name = 'ft'`);
      });
      expect(schema.find((o) => o.name === 'ft')?.sql).toBe(sql);
      const verdict = await checkSchema(schema, SCHEMA_VERSION);
      expect(verdict.problems).toContain(`virtual table ${quote(name)} is not accepted`);
      expect(verdict.foreignTables).not.toContain(name);
    });

    it("should refuse an index named like SQLite's own on an application table (written with writable_schema)", async () => {
      const schema = schemaOf(file, (db) => {
        db.exec('CREATE UNIQUE INDEX hostile ON sessions (user_id)');
        behindSqlitesBack(
          db,
          "UPDATE sqlite_schema SET name = 'sqlite_autoindex_sessions_9', sql = 'CREATE UNIQUE INDEX " +
            "sqlite_autoindex_sessions_9 ON sessions (user_id)' WHERE name = 'hostile'",
        );
      });
      const index = schema.find((o) => o.name === 'sqlite_autoindex_sessions_9');
      expect(index?.origin).toBe('c');
      expect((await checkSchema(schema, SCHEMA_VERSION)).problems).toContain(
        'index "sqlite_autoindex_sessions_9" on application table "sessions" is not created by this application',
      );
    });

    it('should still skip the indexes SQLite makes for UNIQUE and PRIMARY KEY constraints', async () => {
      const schema = schemaOf(file, (db) => db.exec('CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT UNIQUE)'));
      const automatic = schema.filter((o) => o.type === 'index' && o.tbl_name === 'kv');
      expect(automatic.map((o) => o.origin).sort()).toEqual(['pk', 'u']);
      expect(await checkSchema(schema, SCHEMA_VERSION)).toEqual({ problems: [], foreignTables: ['kv'] });
    });

    it('should refuse a trigger given a reserved sqlite_ name', async () => {
      const schema = schemaOf(file, (db) => {
        db.exec('CREATE TRIGGER t1 AFTER INSERT ON audit_log BEGIN DELETE FROM audit_log; END');
        behindSqlitesBack(
          db,
          "UPDATE sqlite_schema SET name = 'sqlite_t1', sql = replace(sql, 'TRIGGER t1', 'TRIGGER sqlite_t1') WHERE name = 't1'",
        );
      });
      expect((await checkSchema(schema, SCHEMA_VERSION)).problems).toContain(
        'trigger "sqlite_t1" is not created by this application',
      );
    });

    it('should refuse a foreign table whose foreign key references an application table, naming both', async () => {
      const schema = schemaOf(file, (db) =>
        db.exec('CREATE TABLE pin (a INTEGER REFERENCES audit_log(id) ON DELETE RESTRICT)'),
      );
      const verdict = await checkSchema(schema, SCHEMA_VERSION);
      expect(verdict.problems).toEqual([
        'table "pin" references application table "audit_log" (its restore could never finish)',
      ]);
      expect(verdict.foreignTables).toEqual([]);
    });

    it('should accept a foreign table whose foreign key references another foreign table', async () => {
      const schema = schemaOf(file, (db) =>
        db.exec('CREATE TABLE parent (id INTEGER PRIMARY KEY); CREATE TABLE child (p INTEGER REFERENCES parent(id))'),
      );
      expect(await checkSchema(schema, SCHEMA_VERSION)).toEqual({ problems: [], foreignTables: ['child', 'parent'] });
    });

    it('should read the schema and every ordinary table without connecting a virtual table', () => {
      const db = new Database(file);
      spyModule(db);
      db.exec('CREATE VIRTUAL TABLE sv USING spy; CREATE TABLE plain (x); INSERT INTO plain VALUES (1)');
      behindSqlitesBack(
        db,
        "UPDATE sqlite_schema SET sql = 'CREATE /**/ VIRTUAL TABLE sv USING spy' WHERE name = 'sv'",
      );
      db.close();

      const reader = new Database(file, { readonly: true });
      try {
        const spy = spyModule(reader);
        const facts = readSchemaFacts(reader);
        readEveryTable(reader);
        expect(spy.connects).toBe(0);
        expect(facts.find((o) => o.name === 'sv')?.tableKind).toBe('virtual');
        expect(facts.find((o) => o.name === 'plain')?.tableKind).toBe('ordinary');
        // What the old text pattern and PRAGMA table_list would have done: the module runs.
        reader.prepare('PRAGMA table_list').all();
        expect(spy.connects).toBe(1);
      } finally {
        reader.close();
      }
    });
  });
});
