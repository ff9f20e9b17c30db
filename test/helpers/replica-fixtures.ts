import Database from 'better-sqlite3';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { AgeCrypto } from '../../src/offsite/age-crypto';
import { OffsiteBucket } from '../../src/offsite/offsite-bucket';
import { ReplicaStore } from '../../src/replication/replica-store';
import {
  type AgeKeys,
  BUCKET,
  FaultProxy,
  makeAgeKeys,
  offsiteEnv,
  PREFIX,
  type S3Server,
  startS3,
  useTestCredentials,
} from './s3-fixtures';
import { startTestApp, type TestApp } from './test-app';

export interface ReplicaFixture {
  readonly proxy: FaultProxy;
  readonly keys: AgeKeys;
  /**
   * The environment for this bucket (through the proxy) and keys, replication on, rounds driven by the test unless
   * `extra` says otherwise: for an app or the CLI.
   */
  env(extra?: Record<string, string>): Record<string, string>;
  /** An app on it, closed after the test. */
  start(extra?: Record<string, string>): Promise<TestApp>;
}

/**
 * For every test of the calling `describe`: s3rver behind a fault proxy and a fresh age key pair, all removed after
 * it (the secret key first, so a failing close cannot leave it in the temp folder).
 */
export function replicaPerTest(): ReplicaFixture {
  const current: { s3?: S3Server; proxy?: FaultProxy; keys?: AgeKeys; keyDir?: string; app?: TestApp } = {};
  beforeAll(() => useTestCredentials());
  beforeEach(async () => {
    current.s3 = await startS3();
    current.proxy = new FaultProxy(current.s3.endpoint);
    await current.proxy.start();
    current.keyDir = fs.mkdtempSync(path.join(tmpdir(), 'mc-keys-'));
    current.keys = await makeAgeKeys(current.keyDir);
  });
  afterEach(async () => {
    if (current.keyDir !== undefined) {
      fs.rmSync(current.keyDir, { recursive: true, force: true });
    }
    await current.app?.close();
    await current.proxy?.close();
    await current.s3?.close();
    for (const key of Object.keys(current) as Array<keyof typeof current>) {
      delete current[key];
    }
  });
  const need = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) {
      throw new Error(`replicaPerTest: no ${what} outside a test`);
    }
    return value;
  };
  const fixture: ReplicaFixture = {
    get proxy() {
      return need(current.proxy, 'proxy');
    },
    get keys() {
      return need(current.keys, 'keys');
    },
    env(extra = {}) {
      return offsiteEnv(fixture.proxy.endpoint, {
        BACKUP_ENCRYPTION_RECIPIENTS: fixture.keys.recipient,
        BACKUP_ENCRYPTION_IDENTITY_FILE: fixture.keys.identityFile,
        REPLICATION: 'on',
        REPLICATION_SYNC_INTERVAL_MS: '60000',
        ...extra,
      });
    },
    async start(extra = {}) {
      current.app = await startTestApp(fixture.env(extra));
      return current.app;
    },
  };
  return fixture;
}

/** A live database as the service keeps it (WAL, no automatic checkpoint: the shipper checkpoints) with `notes`. */
export function openNotesDatabase(file: string): Database.Database {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('wal_autocheckpoint = 0');
  db.exec('CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)');
  return db;
}

/** The bucket at `endpoint` and the replica store a shipper writes to, sealed to `keys`. */
export function replicaStoreAt(endpoint: string, keys: AgeKeys): { bucket: OffsiteBucket; store: ReplicaStore } {
  const bucket = new OffsiteBucket(
    {
      bucket: BUCKET,
      endpoint,
      region: 'us-east-1',
      prefix: PREFIX,
      forcePathStyle: true,
      recipients: [keys.recipient],
      allowPlaintext: false,
    },
    3000,
  );
  return { bucket, store: new ReplicaStore(bucket, new AgeCrypto([keys.recipient], keys.identityFile)) };
}

/** The `notes` of a rebuilt or restored file, in order. */
export function notesIn(file: string): string[] {
  const db = new Database(file, { readonly: true });
  try {
    return (db.prepare('SELECT body FROM notes ORDER BY id').all() as { body: string }[]).map((r) => r.body);
  } finally {
    db.close();
  }
}
