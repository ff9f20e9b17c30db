import { Decrypter, Encrypter } from 'age-encryption';
import fc from 'fast-check';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AgeCrypto, generateIdentityFile, identitiesIn } from './age-crypto';
import { AgeDecryptStream, AgeEncryptStream, CHUNK_SIZE, decryptStream, encryptStream } from './age-stream';

const SEALED = CHUNK_SIZE + 16;
const BOUNDARY_SIZES = [0, 1, 65535, 65536, 65537, 2 * 65536, 2 * 65536 + 1];

interface Key {
  file: string;
  identity: string;
  recipient: string;
}

let dir: string;
let alice: Key;
let bob: Key;

async function makeKey(name: string): Promise<Key> {
  const { text, recipient } = await generateIdentityFile(new Date());
  const file = path.join(dir, `${name}.key`);
  fs.writeFileSync(file, text, { mode: 0o600 });
  return { file, identity: identitiesIn(text)[0], recipient };
}

/** `data` as a stream of pieces cut at `cuts` (offsets), so chunk edges fall anywhere. */
function piecewise(data: Buffer, cuts: number[] = []): Readable {
  const edges = [...new Set([0, ...cuts.filter((c) => c > 0 && c < data.length), data.length])].sort((a, b) => a - b);
  const pieces = edges.slice(1).map((end, i) => data.subarray(edges[i], end));
  return Readable.from(pieces, { objectMode: false });
}

async function collect(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) {
    parts.push(part as Buffer);
  }
  return Buffer.concat(parts);
}

/** Our encryption on this thread (AgeEncryptStream), or in a worker thread as the service runs it (AgeCrypto). */
async function oursEncrypt(plain: Buffer, recipients: string[], cuts?: number[], threaded = false): Promise<Buffer> {
  if (threaded) {
    return collect(await new AgeCrypto(recipients).encrypt(piecewise(plain, cuts)));
  }
  return collect(encryptStream(piecewise(plain, cuts), recipients));
}

type Opened = { ok: true; plain: Buffer } | { ok: false; error: Error; released: Buffer };

/** Our decryption of `cipher`, with what it let out before failing (if it failed). */
async function oursDecrypt(cipher: Buffer, identities: string[], cuts?: number[]): Promise<Opened> {
  const released: Buffer[] = [];
  try {
    const plain = await decryptStream(piecewise(cipher, cuts), identities);
    for await (const part of plain) {
      released.push(part as Buffer);
    }
    return { ok: true, plain: Buffer.concat(released) };
  } catch (error) {
    return { ok: false, error: error as Error, released: Buffer.concat(released) };
  }
}

/** Jest's deep equality crawls a Buffer byte by byte: compare natively. */
function expectPlain(opened: Opened, plain: Buffer): void {
  expect(opened.ok ? 'ok' : opened.error.message).toBe('ok');
  expect(opened.ok && opened.plain.equals(plain)).toBe(true);
}

function cliDecrypt(cipher: Buffer, key: Key): { status: number | null; stdout: Buffer; stderr: string } {
  // From a file, not stdin: age stops reading at the first bad byte, and a pipe would fail with EPIPE.
  const input = path.join(dir, 'cli-input.age');
  fs.writeFileSync(input, cipher);
  const run = spawnSync('age', ['-d', '-i', key.file, input], { maxBuffer: 1 << 30 });
  if (run.error) {
    throw new Error(`the age CLI must be installed for these tests (apt-get install age): ${run.error.message}`);
  }
  return { status: run.status, stdout: run.stdout, stderr: run.stderr.toString() };
}

function cliEncrypt(plain: Buffer, recipients: string[]): Buffer {
  const run = spawnSync(
    'age',
    recipients.flatMap((r) => ['-r', r]),
    { input: plain, maxBuffer: 1 << 30 },
  );
  if (run.error || run.status !== 0) {
    throw new Error(`age -e failed: ${run.error?.message ?? run.stderr.toString()}`);
  }
  return run.stdout;
}

async function libraryEncrypt(plain: Buffer, recipients: string[]): Promise<Buffer> {
  const encrypter = new Encrypter();
  recipients.forEach((r) => encrypter.addRecipient(r));
  return Buffer.from(await encrypter.encrypt(new Uint8Array(plain)));
}

async function libraryDecrypt(cipher: Buffer, identity: string): Promise<Buffer> {
  const decrypter = new Decrypter();
  decrypter.addIdentity(identity);
  return Buffer.from(await decrypter.decrypt(new Uint8Array(cipher)));
}

/** Where the payload starts: after the header's MAC line and the 16-byte payload nonce. */
function payloadOffset(cipher: Buffer): number {
  return cipher.indexOf('\n---') + cipher.subarray(cipher.indexOf('\n---') + 1).indexOf('\n') + 2 + 16;
}

/** Plaintext sizes around the chunk edges: exactly on them, a few bytes either side, and anywhere up to 4 chunks. */
const sizes = fc.oneof(
  fc.constantFrom(...BOUNDARY_SIZES),
  fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: -2, max: 2 })).map(([k, d]) => k * CHUNK_SIZE + d),
  fc.integer({ min: 0, max: 4 * CHUNK_SIZE + 100 }),
);
const cuts = fc.array(fc.integer({ min: 1, max: 4 * SEALED + 400 }), { maxLength: 6 });

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mc-age-stream-'));
  alice = await makeKey('alice');
  bob = await makeKey('bob');
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('age v1 on native ChaCha20-Poly1305', () => {
  describe('compatibility', () => {
    it.each(BOUNDARY_SIZES)(
      'should round-trip %d bytes with the age CLI and the age library both ways',
      async (size) => {
        const plain = randomBytes(size);
        const ours = await oursEncrypt(plain, [alice.recipient]);
        expect(ours.length).toBe(payloadOffset(ours) + size + 16 * Math.max(1, Math.ceil(size / CHUNK_SIZE)));
        const cli = cliDecrypt(ours, alice);
        expect(cli.stderr).toBe('');
        expect(cli.status).toBe(0);
        expect(cli.stdout.equals(plain)).toBe(true);
        expect((await libraryDecrypt(ours, alice.identity)).equals(plain)).toBe(true);

        for (const theirs of [cliEncrypt(plain, [alice.recipient]), await libraryEncrypt(plain, [alice.recipient])]) {
          expectPlain(await oursDecrypt(theirs, [alice.identity]), plain);
        }
      },
    );

    it('should agree with the age CLI and the age library on random sizes and random chunking', async () => {
      await fc.assert(
        fc.asyncProperty(sizes, cuts, cuts, fc.boolean(), async (size, plainCuts, cipherCuts, threaded) => {
          const plain = randomBytes(size);
          const ours = await oursEncrypt(plain, [alice.recipient, bob.recipient], plainCuts, threaded);
          for (const key of [alice, bob]) {
            const cli = cliDecrypt(ours, key);
            expect(cli.status).toBe(0);
            expect(cli.stdout.equals(plain)).toBe(true);
          }
          expect((await libraryDecrypt(ours, bob.identity)).equals(plain)).toBe(true);
          const fromCli = await oursDecrypt(
            cliEncrypt(plain, [bob.recipient]),
            [alice.identity, bob.identity],
            cipherCuts,
          );
          expectPlain(fromCli, plain);
          const fromLibrary = await oursDecrypt(
            await libraryEncrypt(plain, [alice.recipient]),
            [alice.identity],
            cipherCuts,
          );
          expectPlain(fromLibrary, plain);
        }),
        { numRuns: 25 },
      );
    });
  });

  describe('damage', () => {
    /** Every failure is an error, and nothing is let out past the last authenticated chunk. */
    function expectFailure(opened: Opened, plain: Buffer, message: RegExp): void {
      expect(opened.ok).toBe(false);
      if (!opened.ok) {
        expect(opened.error.message).toMatch(message);
        expect(opened.released.length % CHUNK_SIZE).toBe(0);
        expect(opened.released.length).toBeLessThan(Math.max(plain.length, 1));
        expect(plain.subarray(0, opened.released.length).equals(opened.released)).toBe(true);
      }
    }

    it('should refuse a flipped bit anywhere: header, nonce or any chunk, the last one included', async () => {
      await fc.assert(
        fc.asyncProperty(sizes, fc.nat(), fc.nat(7), async (size, where, bit) => {
          const plain = randomBytes(size);
          const cipher = await oursEncrypt(plain, [alice.recipient]);
          const damaged = Buffer.from(cipher);
          damaged[where % cipher.length] ^= 1 << bit;
          const opened = await oursDecrypt(damaged, [alice.identity]);
          expectFailure(opened, plain, /altered|truncated|identity matched|base64|header|not an age|stanza|share/);
          expect(cliDecrypt(damaged, alice).status).not.toBe(0);
        }),
        { numRuns: 40 },
      );
    });

    it.each(BOUNDARY_SIZES.filter((s) => s > 0))(
      'should refuse a flipped bit in each chunk of %d bytes',
      async (size) => {
        const plain = randomBytes(size);
        const cipher = await oursEncrypt(plain, [alice.recipient]);
        const start = payloadOffset(cipher);
        for (let chunk = 0; start + chunk * SEALED < cipher.length; chunk++) {
          const damaged = Buffer.from(cipher);
          damaged[Math.min(start + chunk * SEALED + 100, cipher.length - 1)] ^= 0x80;
          const opened = await oursDecrypt(damaged, [alice.identity]);
          expectFailure(opened, plain, new RegExp(`chunk ${chunk} does not authenticate`));
          expect(opened.ok === false && opened.released.length).toBeLessThanOrEqual(chunk * CHUNK_SIZE);
        }
      },
    );

    it('should refuse a file cut short anywhere, on a chunk edge included', async () => {
      const plain = randomBytes(3 * CHUNK_SIZE + 10);
      const cipher = await oursEncrypt(plain, [alice.recipient]);
      const start = payloadOffset(cipher);
      const ends = [
        0,
        10,
        start - 20,
        start - 1,
        start,
        start + 15,
        start + SEALED,
        start + 2 * SEALED,
        start + 2 * SEALED + 7,
      ];
      for (const end of [...ends, cipher.length - 1]) {
        const opened = await oursDecrypt(cipher.subarray(0, end), [alice.identity]);
        expectFailure(opened, plain, /truncated|not an age/);
        expect(cliDecrypt(cipher.subarray(0, end), alice).status).not.toBe(0);
      }
    });

    it.each([2 * CHUNK_SIZE, 2 * CHUNK_SIZE + 1, 0])('should refuse a chunk appended to %d bytes', async (size) => {
      const plain = randomBytes(size);
      const cipher = await oursEncrypt(plain, [alice.recipient]);
      const start = payloadOffset(cipher);
      // A copy of the first sealed chunk: well formed, but nothing may follow the final chunk.
      const extended = Buffer.concat([cipher, cipher.subarray(start, Math.min(start + SEALED, cipher.length))]);
      const opened = await oursDecrypt(extended, [alice.identity]);
      expectFailure(
        opened,
        plain,
        size > 0 && size % CHUNK_SIZE === 0 ? /data follows its final chunk/ : /does not authenticate/,
      );
      expect(cliDecrypt(extended, alice).status).not.toBe(0);
    });

    it('should refuse a wrong identity before any byte is read, and an altered header MAC', async () => {
      const plain = randomBytes(1000);
      const cipher = await oursEncrypt(plain, [alice.recipient]);
      await expect(decryptStream(Readable.from([cipher]), [bob.identity])).rejects.toThrow(
        "no identity matched any of the file's recipients",
      );
      await expect(new AgeCrypto([], bob.file).decrypt(Readable.from([cipher]))).rejects.toThrow(/no identity matched/);
      const macAt = cipher.indexOf('\n--- ') + 6;
      const damaged = Buffer.from(cipher);
      damaged[macAt] = damaged[macAt] === 0x41 ? 0x42 : 0x41;
      await expect(decryptStream(Readable.from([damaged]), [alice.identity])).rejects.toThrow(/header was altered/);
      await expect(decryptStream(Readable.from([Buffer.from('SQLite format 3\0')]), [alice.identity])).rejects.toThrow(
        /not an age v1 file/,
      );
    });
  });

  describe('hashing while encrypting', () => {
    it('should give the sha256 of the plain bytes and of the object from the one pass', async () => {
      const plain = randomBytes(3 * CHUNK_SIZE + 5);
      const encrypter = new AgeCrypto([alice.recipient]).encrypter();
      const parts: Buffer[] = [];
      await pipeline(
        piecewise(plain, [7, 70000]),
        encrypter,
        new Writable({
          write: (c: Buffer, _e, cb) => {
            parts.push(c);
            cb();
          },
        }),
      );
      const object = Buffer.concat(parts);
      expect(encrypter.digests()).toEqual({
        plainSha256: createHash('sha256').update(plain).digest('hex'),
        plainBytes: plain.length,
        objectSha256: createHash('sha256').update(object).digest('hex'),
        objectBytes: object.length,
      });
      expect(cliDecrypt(object, alice).stdout.equals(plain)).toBe(true);
    });

    it.each(['on this thread', 'in a worker thread'])(
      'should fail the stream before its final chunk when the check refuses the plaintext (%s)',
      async (where) => {
        const plain = randomBytes(2 * CHUNK_SIZE + 5);
        const check = () => new Error('LOCAL_CHECKSUM_MISMATCH');
        const encrypter =
          where === 'on this thread'
            ? new AgeEncryptStream([alice.recipient], { check })
            : new AgeCrypto([alice.recipient]).encrypter({ check });
        const parts: Buffer[] = [];
        const sink = new Writable({
          write: (c: Buffer, _e, cb) => {
            parts.push(c);
            cb();
          },
        });
        await expect(pipeline(piecewise(plain), encrypter, sink)).rejects.toThrow('LOCAL_CHECKSUM_MISMATCH');
        // What did leave is not a complete age file.
        expect(cliDecrypt(Buffer.concat(parts), alice).status).not.toBe(0);
      },
    );

    it('should pass a source error on and end its thread', async () => {
      const failing = new Readable({
        read() {
          this.destroy(new Error('EIO from the disk'));
        },
      });
      const encrypted = await new AgeCrypto([alice.recipient]).encrypt(failing);
      await expect(collect(encrypted)).rejects.toThrow('EIO from the disk');
    });
  });

  it('should stop reading its source while nobody reads the age file (worker thread)', async () => {
    const piece = randomBytes(1024 * 1024);
    const total = 64 * piece.length;
    let sent = 0;
    const source = new Readable({
      read() {
        this.push(sent < total ? piece : null);
        sent += piece.length;
      },
    });
    const encrypted = new AgeCrypto([alice.recipient]).encrypter();
    const done = pipeline(source, encrypted);
    // Not a timing assertion: wait until the source is no longer being read, however long that takes.
    for (let still = 0, last = -1; still < 3; still = sent === last ? still + 1 : 0) {
      last = sent;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(sent).toBeLessThan(16 * 1024 * 1024);
    // Then it resumes, and the file is whole.
    const decrypted = await decryptStream(encrypted, [alice.identity]);
    const hash = createHash('sha256');
    for await (const chunk of decrypted) {
      hash.update(chunk as Buffer);
    }
    await done;
    const expected = createHash('sha256');
    for (let i = 0; i < 64; i++) {
      expected.update(piece);
    }
    expect(hash.digest('hex')).toBe(expected.digest('hex'));
  });

  it('should keep memory flat on a large stream', async () => {
    // Big enough that buffering it whole (or a growing share of it) could not stay under the bound below.
    const total = 256 * 1024 * 1024;
    const piece = randomBytes(1024 * 1024);
    let sent = 0;
    const source = new Readable({
      read() {
        this.push(sent < total ? piece : null);
        sent += piece.length;
      },
    });
    const hash = createHash('sha256');
    let received = 0;
    let peak = 0;
    const base = process.memoryUsage().arrayBuffers;
    const encrypted = new AgeCrypto([alice.recipient]).encrypter();
    const decrypted = new AgeDecryptStream([alice.identity]);
    await pipeline(
      source,
      encrypted,
      decrypted,
      new Writable({
        write(chunk: Buffer, _e, callback) {
          hash.update(chunk);
          received += chunk.length;
          peak = Math.max(peak, process.memoryUsage().arrayBuffers - base);
          callback();
        },
      }),
    );
    const expected = createHash('sha256');
    for (let i = 0; i < total / piece.length; i++) {
      expected.update(piece);
    }
    expect(received).toBe(total);
    expect(hash.digest('hex')).toBe(expected.digest('hex'));
    // About a third of the stream: room for garbage the collector has not reached yet, far below buffering it whole.
    expect(peak).toBeLessThan(96 * 1024 * 1024);
  });
});
