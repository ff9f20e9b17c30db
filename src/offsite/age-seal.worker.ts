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

/**
 * Sealed pieces (transferred) and the plaintext buffer handed back for reuse, so neither thread makes garbage per
 * chunk beyond the pieces themselves; the last reply has `digests`.
 */
export type SealReply =
  | { sealed: ArrayBuffer[]; input: ArrayBuffer; last: false }
  | { sealed: ArrayBuffer[]; last: true; digests: AgeDigests | null }
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
  let transfer: ArrayBuffer[] = [];
  try {
    if ('data' in request) {
      const sealed = sealer.writeParts(Buffer.from(request.data)).map(own);
      sealer.release();
      reply = { sealed, input: request.data, last: false };
      transfer = [...sealed, request.data];
    } else {
      const { sealed, digests } = sealer.end();
      reply = { sealed: [own(sealed)], last: true, digests };
      transfer = reply.sealed;
    }
  } catch (error) {
    reply = { error: (error as Error).message };
  }
  // The thread is ended by its owner once the last reply has arrived (closing the port here could drop it).
  port.postMessage(reply, transfer);
});
