import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import {
  type AgeKeys,
  FaultProxy,
  makeAgeKeys,
  offsiteEnv,
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
