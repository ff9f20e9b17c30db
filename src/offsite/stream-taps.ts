import { createHash } from 'node:crypto';
import { pipeline, Readable, Transform, type TransformCallback } from 'node:stream';
import { CodedError } from './offsite-common';

/** A pass-through that hashes and counts; `onEnd` may fail the stream at its end (before an upload completes). */
export function hashingTap(onEnd?: (sha256: string, bytes: number) => Error | null): {
  stream: Transform;
  result: () => { sha256: string; bytes: number };
} {
  const hash = createHash('sha256');
  let bytes = 0;
  let digest: string | null = null;
  const stream = new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
      hash.update(chunk);
      bytes += chunk.length;
      callback(null, chunk);
    },
    flush(callback: TransformCallback): void {
      digest = hash.digest('hex');
      callback(onEnd?.(digest, bytes) ?? null);
    },
  });
  return {
    stream,
    result: () => {
      if (digest === null) {
        throw new CodedError('STREAM_INCOMPLETE');
      }
      return { sha256: digest, bytes };
    },
  };
}

/** `source` piped through `tap`; an error on either side destroys both (so an upload or a download sees it). */
export function through<T extends Transform>(source: Readable, tap: T): T {
  pipeline(source, tap, () => undefined);
  return tap;
}

/** Hashes a whole stream. */
export async function hashStream(stream: Readable): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of stream) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), bytes };
}
