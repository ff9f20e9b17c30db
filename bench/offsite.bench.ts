/**
 * `npm run bench -- --offsite [--size <MiB>]`: what an off-site copy costs, against s3rver on loopback started here.
 *
 * 1. A real database of this app (made and migrated by the app, an admin in it), grown to --size with random rows.
 * 2. A plain lib-storage upload of that file (8 MiB parts, 4 in flight): the reference.
 * 3. The service's own pipeline on the same file: file -> sha256 -> age (X25519) -> sha256 -> OffsiteBucket
 *    (lib-storage, If-None-Match), then its manifest. RSS growth over the run and bytes added to the work folder
 *    (temporary disk) are sampled every 50 ms.
 * 4. `backups restore --from-remote latest --yes` with the compiled CLI on an empty data folder.
 */
import { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pipeline, Transform, type TransformCallback } from 'node:stream';
import { AgeCrypto, generateIdentityFile } from '../src/offsite/age-crypto';
import { OffsiteBucket, partSizeFor } from '../src/offsite/offsite-bucket';
import { fillDatabase } from './bench-db';
import { fixed, markdownTable, MIB, progress, type BenchOptions } from './bench-util';

const BUCKET = 'mc-bench';
const PREFIX = 'mission-control/';
const NAME = 'mc-backup-2026-01-01_03-00-00.db';
const TARGETS = { ratio: 0.8, rssMiB: 128, tempBytes: 0, restoreSeconds: 30 };

function folderBytes(dir: string): number {
  let total = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) {
      total += fs.statSync(path.join(entry.parentPath, entry.name)).size;
    }
  }
  return total;
}

/** Samples RSS and the work folder's size while `work` runs. */
async function sampled<T>(
  dir: string,
  work: () => Promise<T>,
): Promise<{ result: T; seconds: number; rssGrowthMiB: number; tempBytes: number }> {
  global.gc?.();
  const rss0 = process.memoryUsage.rss();
  const disk0 = folderBytes(dir);
  let rssMax = rss0;
  let diskMax = disk0;
  const timer = setInterval(() => {
    rssMax = Math.max(rssMax, process.memoryUsage.rss());
    diskMax = Math.max(diskMax, folderBytes(dir));
  }, 50);
  const started = performance.now();
  try {
    const result = await work();
    return {
      result,
      seconds: (performance.now() - started) / 1000,
      rssGrowthMiB: (rssMax - rss0) / MIB,
      tempBytes: diskMax - disk0,
    };
  } finally {
    clearInterval(timer);
  }
}

function tap(hash: ReturnType<typeof createHash>): Transform {
  return new Transform({
    transform(chunk: Buffer, _e: BufferEncoding, callback: TransformCallback): void {
      hash.update(chunk);
      callback(null, chunk);
    },
  });
}

export async function runOffsiteBench(options: BenchOptions): Promise<number> {
  const root = options.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'mc-bench-offsite-'));
  fs.mkdirSync(root, { recursive: true });
  const work = path.join(root, 'data');
  const s3Dir = path.join(root, 's3');
  const bareDir = path.join(root, 'bare');
  fs.mkdirSync(work, { recursive: true });
  fs.mkdirSync(s3Dir);
  process.env.AWS_ACCESS_KEY_ID = 'S3RVER';
  process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER';
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const S3rver = require('s3rver') as new (o: Record<string, unknown>) => {
    run(): Promise<{ port: number }>;
    close(): Promise<void>;
  };
  const s3 = new S3rver({
    port: 0,
    address: '127.0.0.1',
    directory: s3Dir,
    silent: true,
    allowMismatchedSignatures: true,
    configureBuckets: [{ name: BUCKET }],
  });
  const { port } = await s3.run();
  const endpoint = `http://127.0.0.1:${port}`;
  try {
    progress(`building a ${options.sizeMiB} MiB database of this app`);
    const dbPath = path.join(work, 'source.db');
    // The app's schema and an admin, made by the compiled app (the CLI build is reused for the restore below).
    const build = path.join(root, 'build');
    spawnSync(
      process.execPath,
      [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--outDir', build],
      {
        stdio: 'inherit',
      },
    );
    const cli = path.join(build, 'cli', 'main.js');
    const baseEnv = {
      PATH: process.env.PATH ?? '',
      NODE_PATH: path.resolve(__dirname, '..', 'node_modules'),
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      LOG_LEVEL: 'warn',
    };
    // Created, migrated and given an admin by the compiled app itself, then closed.
    const seed =
      `const { createApp } = require(${JSON.stringify(path.join(build, 'app.setup.js'))});` +
      `const { loadConfig } = require(${JSON.stringify(path.join(build, 'config', 'app-config.js'))});` +
      `(async () => { const app = await createApp(loadConfig(process.env)); await app.init(); await app.close(); })()` +
      `.catch((e) => { console.error(e); process.exit(1); });`;
    const made = spawnSync(process.execPath, ['-e', seed], {
      encoding: 'utf8',
      env: { ...baseEnv, MISSION_CONTROL_DB_PATH: dbPath, AUTH_USER: 'admin', AUTH_PASS: 'bench-password-123' },
    });
    if (made.status !== 0 || !fs.existsSync(dbPath)) {
      throw new Error(`could not create the database with the app: ${made.stderr}`);
    }
    fillDatabase(dbPath, Math.round(options.sizeMiB * MIB));
    for (const sidecar of ['-wal', '-shm']) {
      fs.rmSync(dbPath + sidecar, { force: true });
    }
    const size = fs.statSync(dbPath).size;
    const keyFile = path.join(root, 'identity.key');
    const { text, recipient } = await generateIdentityFile(new Date());
    fs.writeFileSync(keyFile, text, { mode: 0o600 });

    progress('plain lib-storage upload (reference)');
    const client = new S3Client({
      region: 'us-east-1',
      endpoint,
      forcePathStyle: true,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    const plain = await sampled(work, () =>
      new Upload({
        client,
        // A quiesced copy that no SQLite connection of this process has open: reading it raw drops no lock.
        // eslint-disable-next-line no-restricted-syntax
        params: { Bucket: BUCKET, Key: `plain/${NAME}`, Body: fs.createReadStream(dbPath, { highWaterMark: MIB }) },
        partSize: partSizeFor(size),
        queueSize: 4,
      }).done(),
    );
    client.destroy();

    progress('encrypt-and-upload (the service pipeline)');
    const bucket = new OffsiteBucket(
      {
        bucket: BUCKET,
        endpoint,
        region: 'us-east-1',
        prefix: PREFIX,
        forcePathStyle: true,
        recipients: [recipient],
        allowPlaintext: false,
      },
      120_000,
    );
    const crypto = new AgeCrypto([recipient], keyFile);
    const plainHash = createHash('sha256');
    const objectHash = createHash('sha256');
    const encrypted = await sampled(work, async () => {
      const source = createHashedSource(dbPath, plainHash);
      const body = await crypto.encrypt(source);
      const hashed = tap(objectHash);
      pipeline(body, hashed, () => undefined);
      await bucket.uploadStream(`${NAME}.age`, hashed, {
        expectedSize: size + 65536,
        contentType: 'application/octet-stream',
      });
    });
    const manifest = {
      name: NAME,
      size,
      sha256: plainHash.digest('hex'),
      object_sha256: objectHash.digest('hex'),
      encrypted: true,
      created_at: 1767236400,
      kind: 'manual',
    };
    await bucket.putSmall(`${NAME}.json`, Buffer.from(JSON.stringify(manifest)), 'application/json');
    bucket.destroy();

    progress('backups restore --from-remote latest --yes on an empty data folder');
    const started = performance.now();
    // Not spawnSync: s3rver runs in this process and must keep answering while the CLI downloads.
    const restored = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [cli, 'backups', 'restore', '--from-remote', 'latest', '--yes'], {
        env: {
          ...baseEnv,
          MISSION_CONTROL_DB_PATH: path.join(bareDir, 'mission-control.db'),
          OFFSITE_S3_BUCKET: BUCKET,
          OFFSITE_S3_ENDPOINT: endpoint,
          OFFSITE_S3_PREFIX: PREFIX,
          BACKUP_ENCRYPTION_IDENTITY_FILE: keyFile,
          BACKUP_ENCRYPTION_RECIPIENTS: recipient,
        },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.on('close', (status) => resolve({ status, stdout, stderr }));
    });
    const restoreSeconds = (performance.now() - started) / 1000;
    if (restored.status !== 0) {
      process.stderr.write(restored.stdout + restored.stderr);
    }
    // The installed file may differ from the upload byte for byte (a WAL-flagged copy is made standalone); the CLI
    // has checked the decrypted stream against the manifest's sha256 before installing.
    const restoredOk =
      restored.status === 0 &&
      restored.stdout.includes(`sha256 ${manifest.sha256}`) &&
      fs.existsSync(path.join(bareDir, 'mission-control.db'));

    const mibs = (seconds: number) => size / MIB / seconds;
    const ratio = mibs(encrypted.seconds) / mibs(plain.seconds);
    const rows = [
      ['Plain lib-storage upload of the file (reference)', fixed(mibs(plain.seconds), 1), 'MiB/s', '—', '—'],
      [
        'Encrypt-and-upload (age, sha256 of both sides, If-None-Match)',
        fixed(mibs(encrypted.seconds), 1),
        'MiB/s',
        `${fixed(ratio, 2)}× (target ≥ ${TARGETS.ratio}×)`,
        ratio >= TARGETS.ratio ? 'yes' : 'no',
      ],
      [
        'RSS growth during encrypt-and-upload',
        fixed(encrypted.rssGrowthMiB, 1),
        'MiB',
        `≤ ${TARGETS.rssMiB} MiB`,
        encrypted.rssGrowthMiB <= TARGETS.rssMiB ? 'yes' : 'no',
      ],
      [
        'Temporary disk during encrypt-and-upload',
        String(encrypted.tempBytes),
        'bytes',
        '0 bytes',
        encrypted.tempBytes <= TARGETS.tempBytes ? 'yes' : 'no',
      ],
      [
        '`restore --from-remote latest` (download, decrypt, verify, install; CLI start included)',
        fixed(restoreSeconds, 1),
        's',
        `≤ ${TARGETS.restoreSeconds} s${restoredOk ? '' : ' (FAILED)'}`,
        restoredOk && restoreSeconds <= TARGETS.restoreSeconds ? 'yes' : 'no',
      ],
    ];
    process.stdout.write(
      `\nOff-site, ${fixed(size / MIB, 0)} MiB database, s3rver on loopback, ${os.cpus().length} CPUs, ` +
        `Node ${process.version}\n\n${markdownTable(['measure', 'value', 'unit', 'target', 'met'], rows)}\n`,
    );
    return restoredOk ? 0 : 1;
  } finally {
    await s3.close();
    if (!options.keep) {
      fs.rmSync(root, { recursive: true, force: true });
    }
  }
}

function createHashedSource(file: string, hash: ReturnType<typeof createHash>): Transform {
  const hashed = tap(hash);
  pipeline(fs.createReadStream(file, { highWaterMark: MIB }), hashed, () => undefined);
  return hashed;
}
