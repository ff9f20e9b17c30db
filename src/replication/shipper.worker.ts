/**
 * Runs in a worker thread (see shipper-thread.ts): the shipper's WAL reads, gzip, age, hashing, spool writes and
 * checkpoints, one request at a time, off the service's event loop. Lives as long as the shipper.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ShipperIoCore, type ShipperIoOptions } from './shipper-io';
import { handle, type ShipperReply, type ShipperRequest } from './shipper-thread';

const core = new ShipperIoCore(workerData as ShipperIoOptions);
const port = parentPort!;

port.on('message', (request: ShipperRequest) => {
  if (request.op === 'close') {
    core.close();
    port.close();
    return;
  }
  let reply: ShipperReply;
  try {
    reply = { id: request.id, result: handle(core, request) };
  } catch (error) {
    reply = { id: request.id, error: error instanceof Error ? error.message : String(error) };
  }
  port.postMessage(reply);
});
