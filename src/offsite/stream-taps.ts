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

/**
 * A pass-through that fails the stream (`OBJECT_TOO_LARGE`) as soon as more than `limit` bytes arrive, so a
 * download stops at the size its manifest promised instead of reading whatever the bucket sends.
 */
export function byteCap(limit: number): { stream: Transform; exceeded: () => boolean } {
  let bytes = 0;
  let over = false;
  const stream = new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
      bytes += chunk.length;
      if (bytes > limit) {
        over = true;
        callback(new CodedError('OBJECT_TOO_LARGE'));
        return;
      }
      callback(null, chunk);
    },
  });
  return { stream, exceeded: () => over };
}

/**
 * A stored object's body, capped at `limit` bytes: refused before the first byte when its Content-Length already
 * says more (the body is destroyed, so the connection stops), else cut off by {@link byteCap} as it streams.
 */
export function cappedBody(
  object: { body: Readable; contentLength: number | null },
  limit: number,
): { body: Readable; exceeded: () => boolean } {
  if (object.contentLength !== null && object.contentLength > limit) {
    object.body.destroy();
    throw new CodedError('OBJECT_TOO_LARGE');
  }
  const cap = byteCap(limit);
  return { body: through(object.body, cap.stream), exceeded: cap.exceeded };
}
