/**
 * A process that runs only the replication Shipper, as the service does (its worker thread included), driven by its
 * parent over IPC with an injected clock: `round` runs one round at the given time. Started by
 * test/replication-kill.e2e-spec.ts, which SIGKILLs it (or lets it kill itself at a fault point) and starts another.
 */
import { AgeCrypto } from '../../src/offsite/age-crypto';
import { OffsiteBucket } from '../../src/offsite/offsite-bucket';
import { ReplicaStore } from '../../src/replication/replica-store';
import { Shipper } from '../../src/replication/shipper';
import type { KillPoint } from '../../src/replication/shipper-io';
import { runSnapshotWorker } from '../../src/sqlite/snapshot';

export interface ShipperChildConfig {
  dbPath: string;
  spoolDir: string;
  endpoint: string;
  bucket: string;
  prefix: string;
  recipient: string;
  identityFile: string;
  now: number;
  walLimitBytes?: number;
  killAt?: KillPoint;
}

export type ShipperChildMessage =
  { type: 'ready' } | { type: 'generation'; generation: string; reason: string } | { type: 'round-done' };

export type ShipperChildCommand = { type: 'round'; now: number };

function send(message: ShipperChildMessage): void {
  process.send!(message);
}

async function main(): Promise<void> {
  const config = JSON.parse(process.env.MC_SHIPPER_CHILD ?? '') as ShipperChildConfig;
  let now = config.now;
  const bucket = new OffsiteBucket(
    {
      bucket: config.bucket,
      endpoint: config.endpoint,
      region: 'us-east-1',
      prefix: config.prefix,
      forcePathStyle: true,
      recipients: [config.recipient],
      allowPlaintext: false,
    },
    3000,
  );
  const shipper = new Shipper({
    dbPath: config.dbPath,
    spoolDir: config.spoolDir,
    store: new ReplicaStore(bucket, new AgeCrypto([config.recipient], config.identityFile)),
    now: () => now,
    snapshot: async (dest) => {
      await runSnapshotWorker(config.dbPath, dest, { hash: false });
    },
    onGeneration: (generation, reason) => send({ type: 'generation', generation, reason }),
    log: () => undefined,
    checkpointBytes: 1,
    checkpointEveryMs: 0,
    walLimitBytes: config.walLimitBytes,
    killAt: config.killAt,
  });
  process.on('message', (command: ShipperChildCommand) => {
    now = command.now;
    void shipper.round().then(() => send({ type: 'round-done' }));
  });
  shipper.start();
  await shipper.settle();
  send({ type: 'ready' });
}

void main();
