/**
 * `npm run bench -- --offsite [--size <MiB>]`: what an off-site copy costs, against s3rver on loopback in a process of its own.
 *
 * 1. A real database of this app (made and migrated by the app, an admin in it), grown to --size with random rows.
 * 2. `--runs` rounds (default 3), each running every pipeline in LABELS once on the same file, in an order that
 *    rotates from round to round: a plain lib-storage upload (the reference), encrypt-and-upload three ways
 *    (native single pass, native between two hashing taps, the age-encryption library), and encryption alone
 *    (native, native with both hashes, library). The machine is shared, so every round is reported, with each
 *    round's ratios taken within that round. RSS growth and bytes added to the work folder (temporary disk) are
 *    sampled every 50 ms.
 * 3. `backups restore --from-remote latest --yes` with the compiled CLI on an empty data folder (the last round's
 *    native upload).
 */
import { DeleteObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { spawn, spawnSync } from 'node:child_process';
import { Encrypter } from 'age-encryption';
import { createHash, type Hash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pipeline, Readable, Transform, type TransformCallback } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { BACKGROUND_READ_BYTES } from '../src/common/io-chunk';
import { AgeCrypto, ageOverhead, generateIdentityFile } from '../src/offsite/age-crypto';
import { AgeEncryptStream, encryptStream } from '../src/offsite/age-stream';
import { OffsiteBucket, partSizeFor } from '../src/offsite/offsite-bucket';
import { fillDatabase } from './bench-db';
import { BENCH_BUCKET, benchBucket, startS3rver } from './bench-s3rver';
import { fixed, markdownTable, maxOf, median, MIB, progress, type BenchOptions } from './bench-util';

const BUCKET = BENCH_BUCKET;
const PREFIX = 'mission-control/';
const NAME = 'mc-backup-2026-01-01_03-00-00.db';
const TARGETS = { ratio: 0.8, rssMiB: 128, tempBytes: 0, restoreSeconds: 30 };

const PIPELINES = ['plain', 'native', 'inline', 'taps', 'library', 'raw-native', 'raw-hashed', 'raw-library'] as const;
type PipelineId = (typeof PIPELINES)[number];
const SHORT: Record<PipelineId, string> = {
  plain: 'plain',
  native: 'native',
  inline: 'inline',
  taps: 'taps',
  library: 'library',
  'raw-native': 'raw native',
  'raw-hashed': 'raw hashed',
  'raw-library': 'raw library',
};
const LABELS: Record<PipelineId, string> = {
  plain: 'plain lib-storage upload of the file, 8 MiB parts, 4 in flight (the reference)',
  native:
    'encrypt-and-upload: file -> AgeCrypto.encrypter() (native ChaCha20-Poly1305 in a worker thread, sha256 of the plain and the ' +
    'stored bytes in the same transform, plain sha256 checked before the last chunk leaves) -> OffsiteBucket ' +
    '(If-None-Match), then the manifest',
  inline:
    'encrypt-and-upload like native, but sealed and hashed on the event loop (AgeEncryptStream with check), no worker thread',
  taps: 'encrypt-and-upload as offsite.service.ts wires it: hashing tap -> AgeCrypto.encrypt() (native, worker thread) -> hashing tap -> OffsiteBucket',
  library:
    'encrypt-and-upload with the age-encryption library (JavaScript ChaCha20) and a hashing tap either side, as before',
  'raw-native':
    'encryption alone on the event loop, file -> AgeEncryptStream (native, no hashing) -> discarded, no upload',
  'raw-hashed':
    'encryption alone with both sha256, file -> AgeCrypto.encrypter() (worker thread) -> discarded, no upload',
  'raw-library':
    'encryption alone with the age-encryption library, file -> Encrypter.encrypt() -> discarded, no upload',
};

interface Measured {
  seconds: number;
  rssGrowthMiB: number;
  tempBytes: number;
}

interface Round {
  round: number;
  measured: Record<PipelineId, Measured>;
}

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

function tap(hash: Hash): Transform {
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
  // In a process of its own (as the replication bench runs it): a bucket never shares the service's event loop, and
  // an in-process s3rver made the plain upload and the encrypted one compete with it for the same thread.
  const s3 = await startS3rver(s3Dir);
  const { port } = s3;
  const endpoint = `http://127.0.0.1:${port}`;
  try {
    progress(`building a ${options.sizeMiB} MiB database of this app`);
    const dbPath = path.join(work, 'source.db');
    // The app's schema and an admin, made by the compiled app (the CLI build is reused for the restore below).
    const build = path.join(root, 'build');
    // The app reads its version from the package.json beside its compiled tree.
    fs.copyFileSync(path.resolve(__dirname, '..', 'package.json'), path.join(root, 'package.json'));
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

    const client = new S3Client({
      region: 'us-east-1',
      endpoint,
      forcePathStyle: true,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    const bucketAt = (prefix: string): OffsiteBucket => benchBucket(endpoint, prefix, recipient, 120_000);
    const bucket = bucketAt(PREFIX);
    const legacyBucket = bucketAt('legacy/');
    const tapsBucket = bucketAt('taps/');
    const inlineBucket = bucketAt('inline/');
    const crypto = new AgeCrypto([recipient], keyFile);
    const expected = await sha256Of(dbPath);
    // A quiesced copy that no SQLite connection of this process has open: reading it raw drops no lock. Read as the
    // service's upload pipeline reads a backup (every variant and the plain upload alike).
    // eslint-disable-next-line no-restricted-syntax
    const readDb = (): fs.ReadStream => fs.createReadStream(dbPath, { highWaterMark: BACKGROUND_READ_BYTES });
    const uploadOptions = { expectedSize: size + ageOverhead(size) + 4096, contentType: 'application/octet-stream' };

    const rounds: Round[] = [];
    let manifest: Record<string, unknown> = {};
    let previous = '';
    for (let round = 1; round <= options.runs; round++) {
      const name = `mc-backup-2026-01-0${Math.min(round, 9)}_03-00-00.db`;
      const measured: Partial<Record<PipelineId, Measured>> = {};
      const steps: Record<PipelineId, () => Promise<void>> = {
        plain: async () => {
          await new Upload({
            client,
            params: { Bucket: BUCKET, Key: `plain/${round}/${NAME}`, Body: readDb() },
            partSize: partSizeFor(size),
            queueSize: 4,
          }).done();
        },
        native: async () => {
          // What the upload pipeline should do: one transform encrypts and hashes both sides.
          const encrypter = crypto.encrypter({
            check: (d) => (d.plainSha256 !== expected ? new Error('LOCAL_CHECKSUM_MISMATCH') : null),
          });
          pipeline(readDb(), encrypter, () => undefined);
          await bucket.uploadStream(`${name}.age`, encrypter, uploadOptions);
          const digests = encrypter.digests();
          manifest = {
            name,
            size,
            sha256: digests.plainSha256,
            object_sha256: digests.objectSha256,
            encrypted: true,
            created_at: 1767236400 + round * 86400,
            kind: 'manual',
          };
          await bucket.putSmall(`${name}.json`, Buffer.from(JSON.stringify(manifest)), 'application/json');
        },
        inline: async () => {
          const encrypter = new AgeEncryptStream([recipient], {
            check: (d) => (d.plainSha256 !== expected ? new Error('LOCAL_CHECKSUM_MISMATCH') : null),
          });
          pipeline(readDb(), encrypter, () => undefined);
          await inlineBucket.uploadStream(`${name}.age`, encrypter, uploadOptions);
        },
        taps: async () => {
          // The service's pipeline before the single-pass transform: native cipher, one hashing tap either side.
          const body = await crypto.encrypt(tapped(readDb(), createHash('sha256')));
          await tapsBucket.uploadStream(`${name}.age`, tapped(body, createHash('sha256')), uploadOptions);
        },
        library: async () => {
          const body = libraryEncrypt(tapped(readDb(), createHash('sha256')), recipient);
          await legacyBucket.uploadStream(`${name}.age`, tapped(await body, createHash('sha256')), uploadOptions);
        },
        'raw-native': () => drain(Promise.resolve(encryptStream(readDb(), [recipient]))),
        'raw-hashed': () => {
          const encrypter = crypto.encrypter();
          pipeline(readDb(), encrypter, () => undefined);
          return drain(Promise.resolve(encrypter));
        },
        'raw-library': () => drain(libraryEncrypt(readDb(), recipient)),
      };
      // Interleaved, and the order rotates from round to round so no pipeline always runs first.
      const order = PIPELINES.map((_, i) => PIPELINES[(i + round - 1) % PIPELINES.length]);
      // Untimed: each upload is deleted once measured (all but the newest native copy, kept for the restore), so
      // the bench needs no more disk than a few copies of the file.
      const stored: Partial<Record<PipelineId, string[]>> = {
        plain: [`plain/${round}/${NAME}`],
        taps: [`taps/${name}.age`],
        inline: [`inline/${name}.age`],
        library: [`legacy/${name}.age`],
        native: round > 1 ? [`${PREFIX}${previous}.age`, `${PREFIX}${previous}.json`] : [],
      };
      for (const id of order) {
        progress(`round ${round}/${options.runs}: ${LABELS[id]}`);
        measured[id] = await sampled(work, steps[id]);
        for (const Key of stored[id] ?? []) {
          await client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key }));
        }
      }
      previous = name;
      rounds.push({ round, measured: measured as Record<PipelineId, Measured> });
    }
    client.destroy();
    for (const b of [bucket, legacyBucket, tapsBucket, inlineBucket]) {
      b.destroy();
    }

    progress('backups restore --from-remote latest --yes on an empty data folder');
    const started = performance.now();
    // Not spawnSync: the bench keeps sampling while the CLI downloads.
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
    // The installed file may differ from the upload byte for byte (a WAL-flagged copy is made standalone, and the CLI
    // prints the sha256 of what it installed); the CLI has checked the decrypted stream against the manifest's sha256
    // before installing.
    const restoredOk =
      restored.status === 0 &&
      /Installed \S+ \(.*sha256 [0-9a-f]{64}\)/.test(restored.stdout) &&
      fs.existsSync(path.join(bareDir, 'mission-control.db'));
    if (!restoredOk) {
      process.stderr.write(`restore --from-remote exited ${restored.status}:\n${restored.stdout}${restored.stderr}\n`);
    }

    const mibs = (m: Measured) => size / MIB / m.seconds;
    const ratio = (r: Round, id: PipelineId) => mibs(r.measured[id]) / mibs(r.measured.plain);
    const roundRows = rounds.map((r) => [
      String(r.round),
      ...PIPELINES.map((id) => fixed(mibs(r.measured[id]), 1)),
      `${fixed(ratio(r, 'native'), 2)}×`,
      `${fixed(ratio(r, 'inline'), 2)}×`,
      `${fixed(ratio(r, 'taps'), 2)}×`,
      `${fixed(ratio(r, 'library'), 2)}×`,
      `${fixed(mibs(r.measured['raw-native']) / mibs(r.measured['raw-library']), 1)}×`,
    ]);
    const nativeRatios = rounds.map((r) => ratio(r, 'native'));
    const rss = maxOf(rounds.map((r) => r.measured.native.rssGrowthMiB));
    const tempBytes = maxOf(rounds.map((r) => r.measured.native.tempBytes));
    const rows = [
      [
        'Encrypt-and-upload / plain upload, median of rounds (native age, both sha256 in the one pass)',
        fixed(median(nativeRatios), 2),
        '×',
        `≥ ${TARGETS.ratio}×`,
        median(nativeRatios) >= TARGETS.ratio ? 'yes' : 'no',
      ],
      [
        'RSS growth during encrypt-and-upload (max of rounds)',
        fixed(rss, 1),
        'MiB',
        `≤ ${TARGETS.rssMiB} MiB`,
        rss <= TARGETS.rssMiB ? 'yes' : 'no',
      ],
      [
        'Temporary disk during encrypt-and-upload (max of rounds)',
        String(tempBytes),
        'bytes',
        '0 bytes',
        tempBytes <= TARGETS.tempBytes ? 'yes' : 'no',
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
      `\nOff-site, ${fixed(size / MIB, 0)} MiB database, s3rver on loopback (a process of its own), ` +
        `${os.cpus().length} CPUs, load ${os
          .loadavg()
          .map((l) => fixed(l, 1))
          .join(' ')}, Node ${process.version}\n\n` +
        `MiB/s of the plain file per round (each pipeline once per round, order rotated):\n\n` +
        `${markdownTable(
          [
            'round',
            ...PIPELINES.map((id) => SHORT[id]),
            'native / plain',
            'inline / plain',
            'taps / plain',
            'library / plain',
            'raw native / raw library',
          ],
          roundRows,
        )}\n\nRSS growth in MiB per round (peak sampled every 50 ms against the start of that step):\n\n` +
        `${markdownTable(
          ['round', ...PIPELINES.map((id) => SHORT[id])],
          rounds.map((r) => [String(r.round), ...PIPELINES.map((id) => fixed(r.measured[id].rssGrowthMiB, 1))]),
        )}\n\n${PIPELINES.map((id) => `- ${SHORT[id]}: ${LABELS[id]}`).join('\n')}\n\n` +
        `${markdownTable(['measure', 'value', 'unit', 'target', 'met'], rows)}\n`,
    );
    return restoredOk ? 0 : 1;
  } finally {
    s3.child.kill('SIGTERM');
    if (!options.keep) {
      fs.rmSync(root, { recursive: true, force: true });
    }
  }
}

/** `source` through a hashing pass-through (how the service hashed each side before the single-pass transform). */
function tapped(source: Readable, hash: Hash): Transform {
  const hashed = tap(hash);
  pipeline(source, hashed, () => undefined);
  return hashed;
}

/** The age-encryption library's own streaming encryption (the service's cipher before node:crypto's). */
async function libraryEncrypt(plain: Readable, recipient: string): Promise<Readable> {
  const encrypter = new Encrypter();
  encrypter.addRecipient(recipient);
  const cipher = await encrypter.encrypt(Readable.toWeb(plain) as unknown as ReadableStream<Uint8Array>);
  return Readable.fromWeb(cipher as unknown as WebReadableStream<Uint8Array>);
}

async function drain(stream: Promise<Readable>): Promise<void> {
  for await (const chunk of await stream) {
    void chunk;
  }
}

async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of fs.createReadStream(file, { highWaterMark: MIB })) {
    hash.update(chunk as Buffer);
  }
  return hash.digest('hex');
}
