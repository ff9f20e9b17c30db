import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  type KeyObject,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';

/**
 * The age v1 header (https://age-encryption.org/v1) with X25519 recipient stanzas, on node:crypto's X25519,
 * HKDF-SHA256, HMAC-SHA256 and ChaCha20-Poly1305. Other stanza types (scrypt, post-quantum, plugins) are skipped
 * when reading, so a file made for several kinds of recipient still opens with an X25519 identity.
 */

export class AgeFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AgeFormatError';
  }
}

const VERSION_LINE = 'age-encryption.org/v1';
const X25519_LABEL = 'age-encryption.org/v1/X25519';
const FILE_KEY_SIZE = 16;
const BODY_LINE_BYTES = 48;
const BODY_LINE_CHARS = 64;
/** A header is a few hundred bytes per recipient; anything longer than this is not an age file we made. */
export const MAX_HEADER_BYTES = 1024 * 1024;
/** DER wrappers that turn a raw 32-byte X25519 scalar or point into a KeyObject (RFC 8410). */
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_X25519 = Buffer.from('302a300506032b656e032100', 'hex');

// ---- bech32 (BIP 173 checksum; age does not apply its 90-character limit) ----

const BECH32 = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';
const GENERATOR = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];

function polymod(values: number[]): number {
  let chk = 1;
  for (const value of values) {
    const top = chk >>> 25;
    chk = ((chk & 0x1ffffff) << 5) ^ value;
    for (let i = 0; i < 5; i++) {
      if ((top >>> i) & 1) {
        chk ^= GENERATOR[i];
      }
    }
  }
  return chk;
}

/** The bytes of a bech32 string whose human-readable part is `hrp` (any case, not mixed); throws otherwise. */
export function bech32Decode(text: string, hrp: string): Buffer {
  const lower = text.toLowerCase();
  if (text !== lower && text !== text.toUpperCase()) {
    throw new AgeFormatError('mixed-case bech32 string');
  }
  const split = lower.lastIndexOf('1');
  if (lower.slice(0, split) !== hrp.toLowerCase() || lower.length - split - 1 < 6) {
    throw new AgeFormatError(`not a bech32 "${hrp}" string`);
  }
  const words: number[] = [];
  for (const char of lower.slice(split + 1)) {
    const word = BECH32.indexOf(char);
    if (word < 0) {
      throw new AgeFormatError('invalid bech32 character');
    }
    words.push(word);
  }
  const prefix = lower.slice(0, split);
  const expanded = [...prefix].map((c) => c.charCodeAt(0) >> 5);
  expanded.push(0, ...[...prefix].map((c) => c.charCodeAt(0) & 31));
  if (polymod([...expanded, ...words]) !== 1) {
    throw new AgeFormatError('invalid bech32 checksum');
  }
  const bytes: number[] = [];
  let acc = 0;
  let bits = 0;
  for (const word of words.slice(0, -6)) {
    acc = (acc << 5) | word;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      bytes.push((acc >>> bits) & 0xff);
    }
  }
  if (bits >= 5 || (acc & ((1 << bits) - 1)) !== 0) {
    throw new AgeFormatError('invalid bech32 padding');
  }
  return Buffer.from(bytes);
}

// ---- base64 without padding, canonical only (as age's Go implementation requires) ----

function b64encode(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64').replace(/=+$/, '');
}

function b64decode(text: string): Buffer {
  if (!/^[A-Za-z0-9+/]*$/.test(text) || text.length % 4 === 1) {
    throw new AgeFormatError('invalid base64 in the age header');
  }
  const bytes = Buffer.from(text, 'base64');
  if (b64encode(bytes) !== text) {
    throw new AgeFormatError('non-canonical base64 in the age header');
  }
  return bytes;
}

// ---- keys ----

function hkdf(ikm: Uint8Array, salt: Uint8Array, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', ikm, salt, info, 32));
}

/** ChaCha20-Poly1305 with an all-zero nonce: how age wraps the 16-byte file key in a stanza. */
function sealFileKey(key: Buffer, fileKey: Buffer): Buffer {
  const cipher = createCipheriv('chacha20-poly1305', key, Buffer.alloc(12), { authTagLength: 16 });
  const sealed = Buffer.concat([cipher.update(fileKey), cipher.final(), cipher.getAuthTag()]);
  return sealed;
}

function openFileKey(key: Buffer, body: Buffer): Buffer | null {
  const decipher = createDecipheriv('chacha20-poly1305', key, Buffer.alloc(12), { authTagLength: 16 });
  decipher.setAuthTag(body.subarray(FILE_KEY_SIZE));
  const fileKey = decipher.update(body.subarray(0, FILE_KEY_SIZE));
  try {
    decipher.final();
    return fileKey;
  } catch {
    return null;
  }
}

function publicKeyOf(point: Buffer): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_X25519, point]), format: 'der', type: 'spki' });
}

function rawPublic(key: KeyObject): Buffer {
  return createPublicKey(key).export({ format: 'der', type: 'spki' }).subarray(SPKI_X25519.length);
}

/** X25519, refusing the all-zero output of a low-order point (as the age spec requires). */
function sharedSecret(privateKey: KeyObject, point: Buffer): Buffer {
  let secret: Buffer;
  try {
    secret = diffieHellman({ privateKey, publicKey: publicKeyOf(point) });
  } catch {
    throw new AgeFormatError('invalid X25519 share in the age header');
  }
  if (secret.every((byte) => byte === 0)) {
    throw new AgeFormatError('invalid X25519 share in the age header');
  }
  return secret;
}

/** The 32-byte public key of an `age1…` recipient. */
export function decodeRecipient(recipient: string): Buffer {
  const point = bech32Decode(recipient, 'age');
  if (point.length !== 32) {
    throw new AgeFormatError('invalid X25519 recipient');
  }
  return point;
}

export interface X25519Identity {
  privateKey: KeyObject;
  recipient: Buffer;
}

/** An `AGE-SECRET-KEY-1…` line as a private KeyObject and its public key; the raw scalar is wiped. */
export function decodeIdentity(identity: string): X25519Identity {
  const scalar = bech32Decode(identity, 'AGE-SECRET-KEY-');
  try {
    if (scalar.length !== 32) {
      throw new AgeFormatError('invalid X25519 identity');
    }
    const der = Buffer.concat([PKCS8_X25519, scalar]);
    const privateKey = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    der.fill(0);
    return { privateKey, recipient: rawPublic(privateKey) };
  } finally {
    scalar.fill(0);
  }
}

// ---- the header ----

export interface Stanza {
  args: string[];
  body: Buffer;
}

function x25519Stanza(fileKey: Buffer, recipient: Buffer): Stanza {
  const ephemeral = generateKeyPairSync('x25519').privateKey;
  const share = rawPublic(ephemeral);
  const secret = sharedSecret(ephemeral, recipient);
  const key = hkdf(secret, Buffer.concat([share, recipient]), X25519_LABEL);
  return { args: ['X25519', b64encode(share)], body: sealFileKey(key, fileKey) };
}

function headerMac(fileKey: Buffer, headerNoMac: Buffer): Buffer {
  return createHmac('sha256', hkdf(fileKey, Buffer.alloc(0), 'header'))
    .update(headerNoMac)
    .digest();
}

/** A new file key and the header that wraps it for every recipient. */
export function encodeHeader(recipients: readonly string[]): { fileKey: Buffer; header: Buffer } {
  if (recipients.length === 0) {
    throw new AgeFormatError('no recipients');
  }
  const fileKey = randomBytes(FILE_KEY_SIZE);
  const lines = [`${VERSION_LINE}\n`];
  for (const recipient of recipients) {
    const stanza = x25519Stanza(fileKey, decodeRecipient(recipient));
    lines.push(`-> ${stanza.args.join(' ')}\n`);
    for (let i = 0; i < stanza.body.length; i += BODY_LINE_BYTES) {
      lines.push(`${b64encode(stanza.body.subarray(i, i + BODY_LINE_BYTES))}\n`);
    }
    if (stanza.body.length % BODY_LINE_BYTES === 0) {
      lines.push('\n');
    }
  }
  lines.push('---');
  const headerNoMac = Buffer.from(lines.join(''), 'latin1');
  const mac = headerMac(fileKey, headerNoMac);
  return { fileKey, header: Buffer.concat([headerNoMac, Buffer.from(` ${b64encode(mac)}\n`, 'latin1')]) };
}

export interface ParsedHeader {
  stanzas: Stanza[];
  /** The header bytes the MAC covers: everything up to and including `---`. */
  headerNoMac: Buffer;
  mac: Buffer;
  /** Bytes of `data` the header takes, its final newline included. */
  size: number;
}

/** The header at the start of `data`, or null while it is incomplete; throws when it is not a valid age header. */
export function parseHeader(data: Buffer): ParsedHeader | null {
  let offset = 0;
  const nextLine = (): string | null => {
    const end = data.indexOf(0x0a, offset);
    if (end < 0) {
      if (data.length - offset > MAX_HEADER_BYTES) {
        throw new AgeFormatError('not an age file (no header line ends)');
      }
      return null;
    }
    const line = data.toString('latin1', offset, end);
    offset = end + 1;
    return line;
  };
  const version = nextLine();
  if (version === null) {
    return VERSION_LINE.startsWith(data.toString('latin1', 0, VERSION_LINE.length)) ? null : notAge();
  }
  if (version !== VERSION_LINE) {
    return notAge();
  }
  const stanzas: Stanza[] = [];
  for (;;) {
    const lineStart = offset;
    const line = nextLine();
    if (line === null) {
      return null;
    }
    if (line.startsWith('--- ')) {
      const mac = b64decode(line.slice(4));
      if (mac.length !== 32) {
        throw new AgeFormatError('invalid age header MAC line');
      }
      return { stanzas, headerNoMac: data.subarray(0, lineStart + 3), mac, size: offset };
    }
    const args = line.split(' ');
    if (args.shift() !== '->' || args.length === 0 || args.some((arg) => arg.length === 0)) {
      throw new AgeFormatError('invalid age header line');
    }
    const body: Buffer[] = [];
    for (;;) {
      const bodyLine = nextLine();
      if (bodyLine === null) {
        return null;
      }
      if (bodyLine.length > BODY_LINE_CHARS) {
        throw new AgeFormatError('invalid age stanza body');
      }
      body.push(b64decode(bodyLine));
      if (bodyLine.length < BODY_LINE_CHARS) {
        break;
      }
    }
    stanzas.push({ args, body: Buffer.concat(body) });
  }
}

function notAge(): never {
  throw new AgeFormatError('not an age v1 file (the version line is missing)');
}

/** The file key the first fitting identity unwraps, once the header's MAC holds. */
export function unwrapFileKey(header: ParsedHeader, identities: readonly X25519Identity[]): Buffer {
  for (const identity of identities) {
    for (const stanza of header.stanzas) {
      if (stanza.args[0] !== 'X25519') {
        continue;
      }
      if (stanza.args.length !== 2 || stanza.body.length !== FILE_KEY_SIZE + 16) {
        throw new AgeFormatError('invalid X25519 stanza in the age header');
      }
      const share = b64decode(stanza.args[1]);
      if (share.length !== 32) {
        throw new AgeFormatError('invalid X25519 stanza in the age header');
      }
      const secret = sharedSecret(identity.privateKey, share);
      const key = hkdf(secret, Buffer.concat([share, identity.recipient]), X25519_LABEL);
      const fileKey = openFileKey(key, stanza.body);
      if (fileKey === null) {
        continue;
      }
      if (!timingSafeEqual(headerMac(fileKey, header.headerNoMac), header.mac)) {
        throw new AgeFormatError('the age header was altered (its MAC does not match)');
      }
      return fileKey;
    }
  }
  throw new AgeFormatError("no identity matched any of the file's recipients");
}

/** The payload key: HKDF-SHA256 of the file key, salted with the payload's 16-byte nonce. */
export function payloadKey(fileKey: Buffer, nonce: Buffer): Buffer {
  return hkdf(fileKey, nonce, 'payload');
}
