import { createWriteStream } from 'node:fs';
import { type Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { UploadInterruptedError, UploadTooLargeError } from './backup-errors';

/**
 * Streams `body` into a new temp file here, never holding more than a chunk in memory, and fsyncs it. Past
 * `maxBytes` it stops writing, removes the temp file and throws {@link UploadTooLargeError}: the source is only
 * unpiped, not destroyed, so the caller can still answer the request. The caller must publish or discard the
 * returned temp file.
 */
export async function receiveStream(
  files: { createTemp(): Promise<string>; discardTemp(tmp: string): Promise<void> },
  body: Readable,
  maxBytes: number,
): Promise<{ tmp: string; size: number }> {
  const tmp = await files.createTemp();
  let received = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
      received += chunk.length;
      if (received > maxBytes) {
        callback(new UploadTooLargeError());
        return;
      }
      callback(null, chunk);
    },
  });
  const onAborted = (): void => {
    meter.destroy(new UploadInterruptedError());
  };
  const onEnd = (): void => {
    meter.end();
  };
  try {
    // pipeline(meter → file) owns the file side; the request is piped in by hand so that a failure here does not
    // destroy the request (and with it the socket the 413 must still go out on). `flush` fsyncs before close.
    const file = createWriteStream(tmp, { flags: 'r+', flush: true, highWaterMark: 1024 * 1024 });
    try {
      body.on('aborted', onAborted);
      body.on('error', onAborted);
      body.pipe(meter, { end: false });
      if (body.readableEnded) {
        onEnd();
      } else {
        body.once('end', onEnd);
      }
      await pipeline(meter, file);
    } finally {
      body.unpipe(meter);
      body.off('end', onEnd);
      body.off('aborted', onAborted);
      body.off('error', onAborted);
    }
    return { tmp, size: received };
  } catch (err) {
    await files.discardTemp(tmp).catch(() => undefined);
    throw err;
  }
}
