import { pipeline, type Readable, Transform, type TransformCallback } from 'node:stream';
import type { ImportSource } from '../recovery/import-pipeline';
import { ImportFailedError } from '../recovery/import-pipeline';
import type { AgeCrypto } from './age-crypto';
import type { OffsiteBucket } from './offsite-bucket';
import { maxObjectBytes } from './remote-catalog';
import { objectNameFor, type RemoteManifest } from './remote-objects';

/**
 * An off-site copy as a source for the recovery import pipeline, held to its manifest: never more stored bytes than
 * the manifest's size allows (a 150 MB object behind a small manifest stops at once), the stored bytes' sha256
 * before decryption, the database's sha256 after.
 */
export function bucketSource(
  bucket: OffsiteBucket,
  crypto: AgeCrypto,
  name: string,
  manifest: RemoteManifest,
  onProgress: (storedBytes: number) => void = () => undefined,
): ImportSource {
  return {
    maxStoredBytes: maxObjectBytes(manifest),
    storedSha256: manifest.object_sha256,
    sha256: manifest.sha256,
    decrypt: manifest.encrypted ? (stored: Readable) => crypto.decrypt(stored) : undefined,
    open: async () => {
      const stream = await bucket.getStream(objectNameFor(name, manifest.encrypted));
      if (stream === null) {
        throw new ImportFailedError('missing', `${name} is not in the bucket`);
      }
      let seen = 0;
      const tap = new Transform({
        transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
          seen += chunk.length;
          onProgress(seen);
          callback(null, chunk);
        },
      });
      // pipeline, not pipe: a download that breaks off destroys the tap with its error, so the import fails at once.
      pipeline(stream, tap, () => undefined);
      return tap;
    },
  };
}
