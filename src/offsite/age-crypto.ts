import * as fsp from 'node:fs/promises';
import { pipeline, type Readable } from 'node:stream';
import { decodeRecipient } from './age-header';
import { type AgeEncryptOptions, decryptStream } from './age-stream';
import { AgeThreadedEncryptStream } from './age-thread';

/**
 * The only code that encrypts or decrypts: the age v1 format, X25519 recipients only, so Debian's `age` CLI (1.1)
 * decrypts every object by hand. The payload runs on node:crypto's native ChaCha20-Poly1305 (age-stream.ts), sealed
 * in a worker thread when encrypting (age-thread.ts); keys are still made by age-encryption, the format author's library. Streams in 64 KiB chunks: memory stays flat
 * whatever the size of the backup.
 */

/** `age1` + 58 bech32 characters: an X25519 recipient. Post-quantum (`age1pq1…`) and tag keys are refused. */
const X25519_RECIPIENT_SHAPE = /^age1[02-9ac-hj-np-z]{58}$/;
const IDENTITY_LINE = /^AGE-SECRET-KEY-1[02-9AC-HJ-NP-Z]{58}$/;

/** True for a well-formed X25519 recipient whose bech32 checksum holds. */
export function isX25519Recipient(text: string): boolean {
  if (!X25519_RECIPIENT_SHAPE.test(text)) {
    return false;
  }
  try {
    decodeRecipient(text);
    return true;
  } catch {
    return false;
  }
}

/** The X25519 identities (`AGE-SECRET-KEY-1…`) of an identity file's text; comments and blank lines skipped. */
export function identitiesIn(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => IDENTITY_LINE.test(line));
}

export function looksLikeIdentityFile(text: string): boolean {
  return identitiesIn(text).length > 0;
}

/** A new identity file's text (in `age-keygen`'s layout) and its public recipient. */
export async function generateIdentityFile(now: Date): Promise<{ text: string; recipient: string }> {
  // Loaded here, the one place it is used: it (with its post-quantum dependencies) is a large share of the
  // start-up of every process that imports this file, the CLI and the service included.
  const { generateX25519Identity, identityToRecipient } = await import('age-encryption');
  const identity = await generateX25519Identity();
  const recipient = await identityToRecipient(identity);
  const text = `# created: ${now.toISOString()}\n# public key: ${recipient}\n${identity}\n`;
  return { text, recipient };
}

/** Ciphertext bytes age adds to `plainSize` bytes, header aside (a 16-byte tag per 64 KiB chunk, one nonce). */
export function ageOverhead(plainSize: number): number {
  return 16 + 16 * Math.max(1, Math.ceil(plainSize / 65536));
}

export class AgeCrypto {
  constructor(
    readonly recipients: readonly string[],
    private readonly identityFile?: string,
  ) {}

  get canEncrypt(): boolean {
    return this.recipients.length > 0;
  }

  get canDecrypt(): boolean {
    return this.identityFile !== undefined;
  }

  /** An age stream of `plain`, to every recipient. */
  // eslint-disable-next-line @typescript-eslint/require-await
  async encrypt(plain: Readable): Promise<Readable> {
    const encrypted = new AgeThreadedEncryptStream(this.recipients);
    pipeline(plain, encrypted, () => undefined);
    return encrypted;
  }

  /**
   * A transform from plaintext to an age file to every recipient that also hashes both sides in the same pass:
   * `digests()` once it has ended, or `check` to fail it before its last bytes leave. Sealed in a worker thread.
   */
  encrypter(options: AgeEncryptOptions = { hash: true }): AgeThreadedEncryptStream {
    return new AgeThreadedEncryptStream(this.recipients, options);
  }

  /**
   * The plaintext of an age stream. The identity file is read for each call and never kept: the secret lives in
   * memory only while it is used. Rejects (or the stream errors) when no identity fits or the data was altered.
   */
  async decrypt(cipher: Readable): Promise<Readable> {
    if (this.identityFile === undefined) {
      throw new Error('No identity configured');
    }
    return decryptStream(cipher, identitiesIn(await fsp.readFile(this.identityFile, 'utf8')));
  }
}
