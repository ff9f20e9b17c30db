import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createSecretKey,
  type Hash,
  type KeyObject,
  randomBytes,
} from 'node:crypto';
import { pipeline, type Readable, Transform, type TransformCallback } from 'node:stream';
import {
  AgeFormatError,
  decodeIdentity,
  encodeHeader,
  MAX_HEADER_BYTES,
  parseHeader,
  payloadKey,
  unwrapFileKey,
  type X25519Identity,
} from './age-header';

/**
 * The age v1 payload (STREAM: 64 KiB chunks of ChaCha20-Poly1305, a 12-byte nonce made of an 11-byte big-endian
 * counter and a last-chunk flag) on node:crypto's native AEAD, as Node Transforms. Memory stays flat: at most one
 * chunk is held back (the last one cannot be sealed before the end is known) plus the chunk in hand.
 */

export { AgeFormatError } from './age-header';

export const CHUNK_SIZE = 64 * 1024;
const TAG_SIZE = 16;
const SEALED_CHUNK = CHUNK_SIZE + TAG_SIZE;
const PAYLOAD_NONCE_SIZE = 16;
/** The counter is 88 bits wide; 2^48 chunks (16 EiB) is far past any file and keeps it a safe JS integer. */
const MAX_CHUNKS = 2 ** 48;

/** Bytes queued in arrival order; taking a whole prefix of one buffer copies nothing. */
class ByteQueue {
  private readonly chunks: Buffer[] = [];
  length = 0;

  push(chunk: Buffer): void {
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.length += chunk.length;
    }
  }

  take(n: number): Buffer {
    const head = this.chunks[0];
    if (head !== undefined && head.length >= n) {
      if (head.length === n) {
        this.chunks.shift();
      } else {
        this.chunks[0] = head.subarray(n);
      }
      this.length -= n;
      return head.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.chunks[0];
      const used = Math.min(chunk.length, n - filled);
      chunk.copy(out, filled, 0, used);
      filled += used;
      if (used === chunk.length) {
        this.chunks.shift();
      } else {
        this.chunks[0] = chunk.subarray(used);
      }
    }
    this.length -= n;
    return out;
  }
}

function chunkNonce(counter: number, last: boolean): Buffer {
  if (counter >= MAX_CHUNKS) {
    throw new AgeFormatError('age payload too long');
  }
  const nonce = Buffer.alloc(12);
  nonce.writeUIntBE(counter, 5, 6);
  nonce[11] = last ? 1 : 0;
  return nonce;
}

export interface AgeDigests {
  /** sha256 (hex) and length of the plaintext that went in. */
  plainSha256: string;
  plainBytes: number;
  /** sha256 (hex) and length of the age file that came out: header, nonce and payload. */
  objectSha256: string;
  objectBytes: number;
}

export interface AgeEncryptOptions {
  /** Hash the plaintext and the age file in the same pass as the encryption. */
  hash?: boolean;
  /**
   * Called with the digests once the whole plaintext has been encrypted, before the final chunk leaves: an error
   * returned here fails the stream, so an upload reading it never completes.
   */
  check?: (digests: AgeDigests) => Error | null;
}

/** A new file key wrapped for every recipient: the payload key and the bytes that precede the payload. */
export function newAgeFile(recipients: readonly string[]): { key: Buffer; prefix: Buffer } {
  const { fileKey, header } = encodeHeader(recipients);
  const nonce = randomBytes(PAYLOAD_NONCE_SIZE);
  const key = payloadKey(fileKey, nonce);
  fileKey.fill(0);
  return { key, prefix: Buffer.concat([header, nonce]) };
}

/**
 * The STREAM sealing of one payload, synchronous and stream-free (it runs in a worker thread too), optionally
 * hashing the plaintext and the whole age file on the way.
 */
export class PayloadSealer {
  private readonly key: KeyObject;
  private readonly queue = new ByteQueue();
  private prefix: Buffer | null;
  private counter = 0;
  private readonly plainHash: Hash | null;
  private readonly objectHash: Hash | null;
  private plainBytes = 0;
  private objectBytes = 0;

  constructor(key: Buffer, prefix: Buffer, hash: boolean) {
    this.key = createSecretKey(key);
    this.prefix = prefix;
    this.plainHash = hash ? createHash('sha256') : null;
    this.objectHash = hash ? createHash('sha256') : null;
  }

  /** The age bytes that `chunk` completes (null when none yet): a full chunk is sealed once more data follows. */
  write(chunk: Buffer): Buffer | null {
    const out = this.writeParts(chunk);
    return out.length === 0 ? null : out.length === 1 ? out[0] : Buffer.concat(out);
  }

  /** As write(), in pieces (each sealed chunk and its tag), copying nothing. */
  writeParts(chunk: Buffer): Buffer[] {
    this.plainHash?.update(chunk);
    this.plainBytes += chunk.length;
    this.queue.push(chunk);
    const out: Buffer[] = [];
    while (this.queue.length > CHUNK_SIZE) {
      this.seal(this.queue.take(CHUNK_SIZE), false, out);
    }
    for (const part of out) {
      this.objectHash?.update(part);
      this.objectBytes += part.length;
    }
    return out;
  }

  /** Copies the plaintext held back (at most one chunk), so that no buffer passed to write() is referenced. */
  release(): void {
    if (this.queue.length > 0) {
      this.queue.push(Buffer.from(this.queue.take(this.queue.length)));
    }
  }

  /** The final chunk (empty only when the whole plaintext is), and the digests when hashing. */
  end(): { sealed: Buffer; digests: AgeDigests | null } {
    const out: Buffer[] = [];
    this.seal(this.queue.take(this.queue.length), true, out);
    const sealed = this.hashOut(out);
    if (this.plainHash === null || this.objectHash === null) {
      return { sealed, digests: null };
    }
    const digests = {
      plainSha256: this.plainHash.digest('hex'),
      plainBytes: this.plainBytes,
      objectSha256: this.objectHash.digest('hex'),
      objectBytes: this.objectBytes,
    };
    return { sealed, digests };
  }

  private seal(plain: Buffer, last: boolean, out: Buffer[]): void {
    if (this.prefix !== null) {
      out.push(this.prefix);
      this.prefix = null;
    }
    const cipher = createCipheriv('chacha20-poly1305', this.key, chunkNonce(this.counter++, last), {
      authTagLength: TAG_SIZE,
    });
    out.push(cipher.update(plain));
    cipher.final();
    out.push(cipher.getAuthTag());
  }

  private hashOut(out: Buffer[]): Buffer {
    const data = out.length === 1 ? out[0] : Buffer.concat(out);
    this.objectHash?.update(data);
    this.objectBytes += data.length;
    return data;
  }
}

/** What the encrypting streams share: the digests of a finished stream and the caller's check of them. */
export function finishDigests(digests: AgeDigests | null, options: AgeEncryptOptions): Error | null {
  return digests === null ? null : (options.check?.(digests) ?? null);
}

/** Plaintext in, an age v1 file (X25519 recipients) out, sealed on the calling thread. */
export class AgeEncryptStream extends Transform {
  private readonly sealer: PayloadSealer;
  private result: AgeDigests | null = null;

  constructor(
    recipients: readonly string[],
    private readonly options: AgeEncryptOptions = {},
  ) {
    super();
    const { key, prefix } = newAgeFile(recipients);
    this.sealer = new PayloadSealer(key, prefix, options.hash === true || options.check !== undefined);
    key.fill(0);
  }

  /** The digests of a finished stream (with `hash` or `check`); throws before the stream has ended. */
  digests(): AgeDigests {
    if (this.result === null) {
      throw new Error('the age stream has not finished (or was not hashed)');
    }
    return this.result;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    let sealed: Buffer | null;
    try {
      sealed = this.sealer.write(chunk);
    } catch (error) {
      callback(error as Error);
      return;
    }
    callback(null, sealed ?? undefined);
  }

  override _flush(callback: TransformCallback): void {
    let end: ReturnType<PayloadSealer['end']>;
    try {
      end = this.sealer.end();
    } catch (error) {
      callback(error as Error);
      return;
    }
    this.result = end.digests;
    callback(finishDigests(end.digests, this.options), end.sealed);
  }
}

type DecryptState = 'header' | 'nonce' | 'payload' | 'done';

/** An age v1 file in, its plaintext out; every chunk is authenticated before any of its bytes leave. */
export class AgeDecryptStream extends Transform {
  private readonly identities: X25519Identity[];
  private readonly queue = new ByteQueue();
  private state: DecryptState = 'header';
  private key: KeyObject | null = null;
  /** Held between the header and the payload nonce that follows it. */
  private fileKey: Buffer | null = null;
  private counter = 0;
  /** Settles once the header has been read and authenticated with one of the identities. */
  readonly ready: Promise<void>;
  private settle!: (error?: Error) => void;

  constructor(identities: readonly string[]) {
    super();
    this.identities = identities.map(decodeIdentity);
    this.ready = new Promise<void>((resolve, reject) => {
      this.settle = (error) => (error ? reject(error) : resolve());
    });
    // Whoever reads the stream sees its errors; this only keeps an unawaited `ready` from being reported twice.
    this.ready.catch(() => undefined);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.queue.push(chunk);
    const out: Buffer[] = [];
    try {
      this.advance();
      // A sealed chunk is opened as a middle one only once more data follows it.
      while (this.state === 'payload' && this.queue.length > SEALED_CHUNK) {
        this.open(this.queue.take(SEALED_CHUNK), false, out);
      }
    } catch (error) {
      this.fail(error as Error, callback);
      return;
    }
    if (out.length > 0) {
      this.push(out.length === 1 ? out[0] : Buffer.concat(out));
    }
    callback();
  }

  override _flush(callback: TransformCallback): void {
    const out: Buffer[] = [];
    try {
      this.advance();
      if (this.state !== 'payload') {
        throw new AgeFormatError('truncated age file: it ends inside the header');
      }
      const rest = this.queue.length;
      if (rest < TAG_SIZE) {
        throw new AgeFormatError('truncated age file: its final chunk is missing');
      }
      this.open(this.queue.take(rest), true, out);
      this.state = 'done';
    } catch (error) {
      this.fail(error as Error, callback);
      return;
    }
    callback(null, out.length === 1 ? out[0] : Buffer.concat(out));
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.state === 'header' || this.state === 'nonce') {
      this.settle(error ?? new AgeFormatError('the age stream was closed before its header'));
    }
    callback(error);
  }

  private fail(error: Error, callback: TransformCallback): void {
    this.settle(error);
    callback(error);
  }

  /** Reads the header and the payload nonce as soon as enough bytes are queued. */
  private advance(): void {
    if (this.state === 'header') {
      const peek = this.queue.take(this.queue.length);
      const header = parseHeader(peek);
      if (header === null) {
        if (peek.length > MAX_HEADER_BYTES) {
          throw new AgeFormatError('not an age file we can read (its header never ends)');
        }
        this.queue.push(peek);
        return;
      }
      this.queue.push(peek.subarray(header.size));
      this.fileKey = unwrapFileKey(header, this.identities);
      this.identities.length = 0;
      this.state = 'nonce';
    }
    if (this.state === 'nonce' && this.queue.length >= PAYLOAD_NONCE_SIZE) {
      this.key = createSecretKey(payloadKey(this.fileKey!, this.queue.take(PAYLOAD_NONCE_SIZE)));
      this.fileKey!.fill(0);
      this.fileKey = null;
      this.state = 'payload';
      this.settle();
    }
  }

  private open(sealed: Buffer, last: boolean, out: Buffer[]): void {
    const index = this.counter;
    const plain = this.tryOpen(sealed, index, last);
    if (plain !== null) {
      if (last && plain.length === 0 && index > 0) {
        throw new AgeFormatError('invalid age file: its final chunk is empty');
      }
      this.counter++;
      out.push(plain);
      return;
    }
    if (!last && this.tryOpen(sealed, index, true) !== null) {
      throw new AgeFormatError('invalid age file: data follows its final chunk');
    }
    throw new AgeFormatError(`age payload chunk ${index} does not authenticate: the file was altered or truncated`);
  }

  /** The plaintext of one sealed chunk, or null when its tag does not match. */
  private tryOpen(sealed: Buffer, index: number, last: boolean): Buffer | null {
    const decipher = createDecipheriv('chacha20-poly1305', this.key!, chunkNonce(index, last), {
      authTagLength: TAG_SIZE,
    });
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_SIZE));
    const plain = decipher.update(sealed.subarray(0, sealed.length - TAG_SIZE));
    try {
      decipher.final();
      return plain;
    } catch {
      return null;
    }
  }
}

/** `plain` encrypted to every recipient; an error on either side destroys both. */
export function encryptStream(plain: Readable, recipients: readonly string[], options?: AgeEncryptOptions) {
  const encrypted = new AgeEncryptStream(recipients, options);
  pipeline(plain, encrypted, () => undefined);
  return encrypted;
}

/**
 * The plaintext of `cipher`, once its header has been read and authenticated: rejects when the data is not an age
 * file, no identity fits or the header was altered. Payload damage errors the returned stream.
 */
export async function decryptStream(cipher: Readable, identities: readonly string[]): Promise<Readable> {
  const decrypted = new AgeDecryptStream(identities);
  pipeline(cipher, decrypted, () => undefined);
  await decrypted.ready;
  return decrypted;
}
