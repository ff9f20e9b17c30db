import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { generateIdentityFile } from '../../src/offsite/age-crypto';
import { compiledNodeArgs } from './cli-runner';

// s3rver ships no types; this is the part the tests use.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const S3rver = require('s3rver') as new (options: Record<string, unknown>) => {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
  /** Its winston logger. */
  logger: { silent: boolean };
};

export const BUCKET = 'mc-offsite-test';
export const PREFIX = 'mission-control/';
/** s3rver knows one access key id and accepts any signature (allowMismatchedSignatures): the secret is ours to pick. */
export const S3_ACCESS_KEY = 'S3RVER';
export const S3_SECRET_KEY = 'offsite-secret-0123456789-never-logged';

export interface S3Server {
  endpoint: string;
  dir: string;
  close(): Promise<void>;
  /** Object names (without the prefix) stored in the bucket, from s3rver's folder. */
  objects(): string[];
  /** The stored bytes of an object. */
  objectPath(name: string): string;
}

/** s3rver on loopback in this process, storing under a fresh temp folder. */
export async function startS3(): Promise<S3Server> {
  const dir = fs.mkdtempSync(path.join(tmpdir(), 'mc-s3-'));
  const server = new S3rver({
    port: 0,
    address: '127.0.0.1',
    directory: dir,
    silent: true,
    allowMismatchedSignatures: true,
    configureBuckets: [{ name: BUCKET }],
  });
  // `silent` quiets only the console transport, which close() removes: a request still in flight then (a stalled or
  // reset upload of a fault test) made winston print "Attempt to write logs with no transports". Silence the logger.
  server.logger.silent = true;
  const address = await server.run();
  const bucketDir = path.join(dir, BUCKET);
  const objectPath = (name: string) => path.join(bucketDir, ...`${PREFIX}${name}._S3rver_object`.split('/'));
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    dir,
    objectPath,
    objects() {
      const prefixDir = path.join(bucketDir, ...PREFIX.split('/').filter(Boolean));
      if (!fs.existsSync(prefixDir)) {
        return [];
      }
      return fs
        .readdirSync(prefixDir)
        .filter((f) => f.endsWith('._S3rver_object'))
        .map((f) => f.slice(0, -'._S3rver_object'.length))
        .sort();
    },
    async close() {
      await server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export type FaultMode = 'pass' | 'http500' | 'http503' | 'reset' | 'stall' | 'refuse';

export interface ProxiedRequest {
  method: string;
  /** The path without the bucket and prefix, and the query. */
  url: string;
}

/**
 * A fault-injecting HTTP proxy in front of s3rver: enforces `If-None-Match: *` (which s3rver ignores) with 412,
 * answers 500/503, resets connections mid-body, stalls, refuses deletes of "locked" keys with AccessDenied (Object
 * Lock), and records every request it forwards or answers.
 */
export class FaultProxy {
  mode: FaultMode = 'pass';
  readonly requests: ProxiedRequest[] = [];
  /** Object names (without prefix) whose DELETE is refused with 403 AccessDenied. */
  readonly locked = new Set<string>();
  /**
   * Multipart uploads begun and neither completed nor aborted, by upload id. s3rver answers ListMultipartUploads
   * with NotImplemented, so the proxy answers it from this record (as S3 would).
   */
  readonly openUploads = new Map<string, string>();
  /** Called for every request body chunk of an upload (the kill test uses it). */
  onUploadBytes: ((total: number) => void) | null = null;
  private server!: http.Server;
  private readonly inFlight = new Set<http.ClientRequest>();
  endpoint = '';
  private readonly upstream: URL;

  constructor(upstream: string) {
    this.upstream = new URL(upstream);
  }

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.endpoint = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const upstream of this.inFlight) {
      upstream.destroy();
    }
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  count(filter: (r: ProxiedRequest) => boolean = () => true): number {
    return this.requests.filter(filter).length;
  }

  private key(req: http.IncomingMessage): string {
    const pathname = decodeURIComponent((req.url ?? '').split('?')[0]);
    const start = `/${BUCKET}/${PREFIX}`;
    return pathname.startsWith(start) ? pathname.slice(start.length) : pathname;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const query = (req.url ?? '').includes('?') ? `?${(req.url ?? '').split('?')[1]}` : '';
    const key = this.key(req);
    this.requests.push({ method: req.method ?? '', url: key + query });
    switch (this.mode) {
      case 'refuse':
        req.socket.destroy();
        return;
      case 'http500':
      case 'http503':
        req.resume();
        req.on('end', () => {
          res.writeHead(this.mode === 'http500' ? 500 : 503, { 'Content-Type': 'application/xml' });
          res.end(xmlError(this.mode === 'http500' ? 'InternalError' : 'ServiceUnavailable'));
        });
        return;
      case 'reset': {
        let seen = 0;
        req.on('data', (chunk: Buffer) => {
          seen += chunk.length;
          if (seen > 0) {
            req.socket.destroy();
          }
        });
        req.on('end', () => req.socket.destroy());
        return;
      }
      case 'stall':
        // Read nothing, answer nothing: the client's request timeout must end it.
        return;
      case 'pass':
        break;
    }
    if (req.method === 'DELETE' && this.locked.has(key)) {
      req.resume();
      res.writeHead(403, { 'Content-Type': 'application/xml' });
      res.end(xmlError('AccessDenied'));
      return;
    }
    if (req.method === 'GET' && /[?&]uploads(=|&|$)/.test(query)) {
      req.resume();
      res.writeHead(200, { 'Content-Type': 'application/xml' });
      res.end(listUploadsXml(this.openUploads));
      return;
    }
    const uploadId = /[?&]uploadId=([^&]+)/.exec(query)?.[1];
    if (uploadId !== undefined && req.method === 'DELETE') {
      // AbortMultipartUpload, which s3rver does not implement either: forget the upload, as S3 would.
      req.resume();
      this.openUploads.delete(decodeURIComponent(uploadId));
      res.writeHead(204);
      res.end();
      return;
    }
    if (uploadId !== undefined && req.method === 'POST') {
      res.once('finish', () => this.openUploads.delete(decodeURIComponent(uploadId)));
    }
    const conditional = req.headers['if-none-match'] === '*';
    const creates = req.method === 'PUT' || (req.method === 'POST' && query.includes('uploadId='));
    const isPartUpload = query.includes('partNumber=');
    if (conditional && creates && !isPartUpload && (await this.exists(req.url ?? ''))) {
      req.resume();
      res.writeHead(412, { 'Content-Type': 'application/xml' });
      res.end(xmlError('PreconditionFailed'));
      return;
    }
    this.forward(req, res);
  }

  private exists(url: string): Promise<boolean> {
    const pathOnly = url.split('?')[0];
    return new Promise((resolve) => {
      const head = http.request(
        { host: this.upstream.hostname, port: this.upstream.port, method: 'HEAD', path: pathOnly },
        (response) => {
          response.resume();
          resolve(response.statusCode === 200);
        },
      );
      head.on('error', () => resolve(false));
      head.end();
    });
  }

  private forward(req: http.IncomingMessage, res: http.ServerResponse): void {
    const upstream = http.request(
      {
        host: this.upstream.hostname,
        port: this.upstream.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (response) => {
        const creates = req.method === 'POST' && /[?&]uploads(=|&|$)/.test(req.url ?? '');
        if (!creates) {
          res.writeHead(response.statusCode ?? 502, response.headers);
          response.pipe(res);
          return;
        }
        // CreateMultipartUpload: note the upload id on its way back.
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          const body = Buffer.concat(chunks);
          const id = /<UploadId>([^<]+)<\/UploadId>/.exec(body.toString())?.[1];
          if (id !== undefined) {
            this.openUploads.set(id, `${PREFIX}${this.key(req)}`);
          }
          res.writeHead(response.statusCode ?? 502, response.headers);
          res.end(body);
        });
      },
    );
    upstream.on('error', () => res.destroy());
    // A client that went away (killed mid-body) must not leave s3rver waiting for the rest of the body forever.
    this.inFlight.add(upstream);
    upstream.on('close', () => this.inFlight.delete(upstream));
    res.on('close', () => {
      if (!res.writableFinished) {
        upstream.destroy();
      }
    });
    let total = 0;
    req.on('data', (chunk: Buffer) => {
      total += chunk.length;
      if (req.method === 'PUT') {
        this.onUploadBytes?.(total);
      }
    });
    req.pipe(upstream);
  }
}

function listUploadsXml(uploads: ReadonlyMap<string, string>): string {
  const items = [...uploads]
    .map(([id, key]) => `<Upload><Key>${key}</Key><UploadId>${id}</UploadId></Upload>`)
    .join('');
  return (
    `<?xml version="1.0" encoding="UTF-8"?><ListMultipartUploadsResult><Bucket>${BUCKET}</Bucket>` +
    `<IsTruncated>false</IsTruncated>${items}</ListMultipartUploadsResult>`
  );
}

function xmlError(code: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${code}</Message></Error>`;
}

/** The environment that turns off-site on against `endpoint` (replication off unless `extra` says on). */
export function offsiteEnv(endpoint: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    OFFSITE_S3_BUCKET: BUCKET,
    OFFSITE_S3_ENDPOINT: endpoint,
    OFFSITE_S3_REGION: 'us-east-1',
    OFFSITE_S3_PREFIX: PREFIX,
    OFFSITE_REQUEST_TIMEOUT_MS: '3000',
    // Off-site specs count and list bucket requests of daily copies; replication has specs of its own.
    REPLICATION: 'off',
    ...extra,
  };
}

/** The SDK's default chain reads these; set for the whole test process. */
export function useTestCredentials(): void {
  process.env.AWS_ACCESS_KEY_ID = S3_ACCESS_KEY;
  process.env.AWS_SECRET_ACCESS_KEY = S3_SECRET_KEY;
  process.env.AWS_EC2_METADATA_DISABLED = 'true';
}

export interface AgeKeys {
  identityFile: string;
  recipient: string;
}

/** A fresh X25519 identity file (with the Debian `age-keygen` when present, else the library). */
export async function makeAgeKeys(dir: string): Promise<AgeKeys> {
  const identityFile = path.join(dir, 'identity.txt');
  const { text, recipient } = await generateIdentityFile(new Date());
  fs.writeFileSync(identityFile, text, { mode: 0o600 });
  return { identityFile, recipient };
}

export function hasAgeCli(): boolean {
  return spawnSync('age', ['--version'], { encoding: 'utf8' }).status === 0;
}

/** `age -d -i KEY file.age > out` with the Debian CLI. */
export function ageDecryptFile(identityFile: string, input: string, output: string): void {
  execFileSync('age', ['-d', '-i', identityFile, '-o', output, input]);
}

/** Polls `condition` (no fixed sleeps): resolves once it holds, rejects after `timeoutMs`. */
export async function waitFor<T>(
  condition: () => T | null | undefined | false | Promise<T | null | undefined | false>,
  timeoutMs = 20_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (value) {
      return value;
    }
    if (Date.now() > deadline) {
      throw new Error(`Timed out waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export interface AsyncCliRun {
  status: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * The compiled CLI as a real process, like cli-runner's runCli, but without blocking this process: s3rver and the
 * proxy live in it and must keep answering while the CLI talks to them.
 */
export function runCliAsync(
  mainJs: string,
  dbPath: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<AsyncCliRun> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...compiledNodeArgs(), mainJs, ...args], {
      cwd: path.resolve(__dirname, '..', '..'),
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH ?? '',
        NODE_PATH: path.resolve(__dirname, '..', '..', 'node_modules'),
        MISSION_CONTROL_DB_PATH: dbPath,
        LOG_LEVEL: 'warn',
        AWS_ACCESS_KEY_ID: S3_ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY: S3_SECRET_KEY,
        AWS_EC2_METADATA_DISABLED: 'true',
        ...env,
      },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr, ms: Date.now() - started });
    });
  });
}

export interface CompiledService {
  proc: ChildProcess;
  port: number;
  /** The signal that ended it, once it has. */
  exited: Promise<NodeJS.Signals | null>;
  /** Everything it has printed so far (stdout and stderr). */
  output(): string;
}

/**
 * The compiled service (dist/main.js, with the launchers' code cache) in a child process on `dbPath`, with the
 * test bucket's credentials and `env`: resolves once it listens, on the port the kernel picked.
 */
export async function startCompiledService(
  dbPath: string,
  apiKey: string,
  env: Record<string, string>,
  logLevel = 'info',
): Promise<CompiledService> {
  const root = path.resolve(__dirname, '..', '..');
  let output = '';
  const proc = spawn(process.execPath, [...compiledNodeArgs(), path.join(root, 'dist', 'main.js')], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? '',
      PORT: '0',
      HOST: '127.0.0.1',
      MISSION_CONTROL_DB_PATH: dbPath,
      AUTH_USER: 'admin',
      AUTH_PASS: 'admin-password-123',
      API_KEY: apiKey,
      LOG_LEVEL: logLevel,
      NODE_ENV: 'test',
      AWS_ACCESS_KEY_ID: S3_ACCESS_KEY,
      AWS_SECRET_ACCESS_KEY: S3_SECRET_KEY,
      AWS_EC2_METADATA_DISABLED: 'true',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  proc.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<NodeJS.Signals | null>((resolve) => proc.once('exit', (_code, signal) => resolve(signal)));
  let port: number;
  try {
    port = await waitFor(
      () => {
        if (proc.exitCode !== null) {
          throw new Error(`The service exited early with ${proc.exitCode}:\n${output}`);
        }
        const match = /Listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(output);
        return match ? Number(match[1]) : undefined;
      },
      60_000,
      'the service to listen',
    );
  } catch (error) {
    proc.kill('SIGKILL');
    throw error;
  }
  return { proc, port, exited, output: () => output };
}
