/**
 * Runs in a worker thread (see age-thread.ts): seals one age payload and hashes it, so the cipher and both sha256
 * run beside the upload on the other core instead of inside the event loop that feeds it. Node built-ins and the
 * sealer only, so it starts fast.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { type AgeDigests, PayloadSealer } from './age-stream';

export interface SealJob {
  key: Uint8Array;
  prefix: Uint8Array;
  hash: boolean;
}

/** Plaintext to seal, or the end of it. */
export type SealRequest = { data: ArrayBuffer } | { end: true };

/** Sealed bytes (transferred) and how many plaintext bytes they account for; the last reply has `digests`. */
export type SealReply =
  | { sealed: ArrayBuffer | null; consumed: number; last: false }
  | { sealed: ArrayBuffer; consumed: 0; last: true; digests: AgeDigests | null }
  | { error: string };

/** An ArrayBuffer holding exactly `bytes`, which the worker may give away (a pooled or shared one is copied). */
function own(bytes: Buffer): ArrayBuffer {
  if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && bytes.buffer instanceof ArrayBuffer) {
    return bytes.buffer;
  }
  return new Uint8Array(bytes).buffer;
}

const job = workerData as SealJob;
const sealer = new PayloadSealer(Buffer.from(job.key), Buffer.from(job.prefix), job.hash);
job.key.fill(0);
const port = parentPort!;

port.on('message', (request: SealRequest) => {
  let reply: SealReply;
  try {
    if ('data' in request) {
      const sealed = sealer.write(Buffer.from(request.data));
      reply = { sealed: sealed === null ? null : own(sealed), consumed: request.data.byteLength, last: false };
    } else {
      const { sealed, digests } = sealer.end();
      reply = { sealed: own(sealed), consumed: 0, last: true, digests };
    }
  } catch (error) {
    reply = { error: (error as Error).message };
  }
  // The thread is ended by its owner once the last reply has arrived (closing the port here could drop it).
  port.postMessage(reply, 'sealed' in reply && reply.sealed !== null ? [reply.sealed] : []);
});
