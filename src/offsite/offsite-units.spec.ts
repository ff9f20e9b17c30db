import { ageOverhead, identitiesIn, isX25519Recipient } from './age-crypto';
import { BucketError, describeBucketError, MAX_PARTS, MIN_PART_SIZE, partSizeFor } from './offsite-bucket';
import { BACKOFF_MAX_MS, backoffMs } from './offsite-outbox';
import { backupNameOfObject, parseRemoteManifest } from './remote-objects';

const MIB = 1024 * 1024;

describe('off-site building blocks', () => {
  describe(backoffMs.name, () => {
    it('should double from 30 s and stop at 1 hour', () => {
      expect([1, 2, 3, 4].map(backoffMs)).toEqual([30_000, 60_000, 120_000, 240_000]);
      expect(backoffMs(8)).toBe(BACKOFF_MAX_MS);
      expect(backoffMs(1000)).toBe(BACKOFF_MAX_MS);
    });
  });

  describe(partSizeFor.name, () => {
    it.each([0, 5 * MIB, 1024 * MIB, 100 * 1024 * MIB, 5 * 1024 * 1024 * MIB])(
      'should keep %d bytes within 10,000 parts of at least 8 MiB',
      (size) => {
        const part = partSizeFor(size);
        expect(part).toBeGreaterThanOrEqual(MIN_PART_SIZE);
        expect(part % MIB).toBe(0);
        expect(Math.ceil(size / part)).toBeLessThanOrEqual(MAX_PARTS);
      },
    );
  });

  describe(describeBucketError.name, () => {
    it('should name errors by code or status, never by message', () => {
      const sdk = Object.assign(new Error('https://bucket/secret-key?X-Amz-Signature=abc'), {
        name: 'PreconditionFailed',
        $metadata: { httpStatusCode: 412 },
      });
      expect(describeBucketError(sdk)).toMatchObject({ code: 'PreconditionFailed', status: 412 });
      const unknown = Object.assign(new Error('<html>'), { name: 'Unknown', $metadata: { httpStatusCode: 503 } });
      expect(describeBucketError(unknown).code).toBe('HTTP 503');
      expect(describeBucketError(Object.assign(new Error('x'), { code: 'ECONNRESET' })).code).toBe('ECONNRESET');
      expect(describeBucketError(new BucketError('AccessDenied', 403)).message).not.toContain('http');
    });
  });

  describe('names and manifests', () => {
    it.each([
      ['mc-backup-2026-01-01_03-00-00.db.age', 'mc-backup-2026-01-01_03-00-00.db'],
      ['mc-upload-2026-01-01_03-00-00.db', 'mc-upload-2026-01-01_03-00-00.db'],
      ['mc-backup-2026-01-01_03-00-00.db.json', null],
      ['../x.db.age', null],
      ['notes.txt', null],
    ])('should read %s as %s', (object, name) => {
      expect(backupNameOfObject(object)).toBe(name);
    });

    it('should accept only a well-formed manifest', () => {
      const good = { name: 'a.db', size: 1, sha256: 'a'.repeat(64), object_sha256: 'b'.repeat(64), encrypted: true };
      expect(parseRemoteManifest(Buffer.from(JSON.stringify(good)))).toMatchObject(good);
      expect(parseRemoteManifest(Buffer.from('{'))).toBeNull();
      expect(parseRemoteManifest(Buffer.from(JSON.stringify({ ...good, sha256: 'zz' })))).toBeNull();
      expect(parseRemoteManifest(null)).toBeNull();
    });
  });

  describe('keys', () => {
    it('should take X25519 recipients only, with a valid checksum', () => {
      expect(isX25519Recipient('age1jp8e48typy3fqpkj2gkv4n7crm3hjch4w7zet0yd6y4566hx096s5h9hnt')).toBe(true);
      expect(isX25519Recipient('age1jp8e48typy3fqpkj2gkv4n7crm3hjch4w7zet0yd6y4566hx096s5h9hnq')).toBe(false);
      expect(isX25519Recipient('age1pq1' + 'q'.repeat(100))).toBe(false);
      expect(isX25519Recipient('ssh-ed25519 AAAA')).toBe(false);
    });

    it('should find identities in a file with comments', () => {
      const line = 'AGE-SECRET-KEY-1THFC6FKC8AHCNM2VQS2LDC9LG6E5MLDRFEXA6R89V36FX5ZQNM5QEUURRX';
      expect(identitiesIn(`# created\n# public key: age1...\n${line}\n\n`)).toEqual([line]);
    });

    it('should bound the ciphertext overhead', () => {
      expect(ageOverhead(0)).toBe(32);
      expect(ageOverhead(1024 * MIB)).toBe(16 + 16 * 16384);
    });
  });
});
