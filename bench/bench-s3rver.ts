import { type ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';
import { AgeCrypto } from '../src/offsite/age-crypto';
import { OffsiteBucket } from '../src/offsite/offsite-bucket';
import { ReplicaStore } from '../src/replication/replica-store';
import { Shipper } from '../src/replication/shipper';
import type { ShipperDeps } from '../src/replication/shipper-policy';
import { runSnapshotWorker } from '../src/sqlite/snapshot';

export const BENCH_BUCKET = 'mc-bench';

/** s3rver in a child process serving BENCH_BUCKET on loopback: its CPU is not the measured process's. */
export async function startS3rver(dir: string): Promise<{ port: number; child: ChildProcess }> {
  process.env.AWS_ACCESS_KEY_ID = 'S3RVER';
  process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER';
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  const script = `
    const S3rver = require(${JSON.stringify(require.resolve('s3rver'))});
    new S3rver({ port: 0, address: '127.0.0.1', directory: ${JSON.stringify(dir)}, silent: true,
      allowMismatchedSignatures: true, configureBuckets: [{ name: ${JSON.stringify(BENCH_BUCKET)} }] })
      .run().then(({ port }) => process.send({ port }));`;
  // s3rver's ListObjectsV2 continuation tokens use DES, which OpenSSL 3 only offers through its legacy provider:
  // without it any listing past 1,000 keys (an hour of replication) fails with HTTP 500.
  const child = spawn(process.execPath, ['--openssl-legacy-provider', '-e', script], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (m: { port: number }) => resolve(m.port));
    child.once('exit', (code) => reject(new Error(`s3rver exited (${code})`)));
  });
  return { port, child };
}

/** BENCH_BUCKET at `endpoint` under `prefix`, as the service's off-site configuration makes it, sealed to `recipient`. */
export function benchBucket(endpoint: string, prefix: string, recipient: string, timeoutMs: number): OffsiteBucket {
  return new OffsiteBucket(
    {
      bucket: BENCH_BUCKET,
      endpoint,
      region: 'us-east-1',
      prefix,
      forcePathStyle: true,
      recipients: [recipient],
      allowPlaintext: false,
    },
    timeoutMs,
  );
}

/** The replica store the benches ship to: {@link benchBucket}, with the identity to read it back. */
export function benchReplicaStore(
  endpoint: string,
  prefix: string,
  recipient: string,
  identityFile: string,
  timeoutMs: number,
): { bucket: OffsiteBucket; store: ReplicaStore } {
  const bucket = benchBucket(endpoint, prefix, recipient, timeoutMs);
  return { bucket, store: new ReplicaStore(bucket, new AgeCrypto([recipient], identityFile)) };
}

/** A shipper as the service makes one (snapshots through the verified copy), with the bench's clock. */
export function benchShipper(
  dbFile: string,
  dir: string,
  store: ReplicaStore,
  now: () => number,
  extra: Partial<ShipperDeps> = {},
): Shipper {
  return new Shipper({
    dbPath: dbFile,
    spoolDir: path.join(dir, 'replication'),
    store,
    now,
    snapshot: async (dest) => {
      await runSnapshotWorker(dbFile, dest, { hash: false });
    },
    onGeneration: () => undefined,
    log: () => undefined,
    ...extra,
  });
}
