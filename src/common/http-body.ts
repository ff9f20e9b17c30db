import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { NextFunction, Request, Response } from 'express';

/** No byte of a request body for this long: the client is gone or stalling, and the connection is closed. */
export const DEFAULT_BODY_IDLE_TIMEOUT_MS = 60_000;
/** After an early answer (413), how much more of the refused body is read and thrown away, at most... */
export const DISCARD_MAX_BYTES = 64 * 1024 * 1024;
/** ...and for how long, before the connection is closed regardless. */
export const DISCARD_MAX_MS = 10_000;

/** Routes whose handler sends `100 Continue` itself, once it has decided to read the body. */
const DEFERRED_CONTINUE = new Set(['POST /api/backup/upload']);

export interface HttpBodyOptions {
  bodyIdleTimeoutMs?: number;
  discardMaxBytes?: number;
  discardMaxMs?: number;
}

/**
 * How the HTTP server times bodies and answers `Expect: 100-continue`:
 * - Node's `requestTimeout` (300 s for the whole request, body included) is off: a 10 GB upload at 600 KB/s takes
 *   hours. Instead a body gets an idle timeout (no byte for `bodyIdleTimeoutMs`), on every route; headers keep
 *   Node's `headersTimeout` (60 s).
 * - Node answers `100 Continue` on its own before the app sees the request. For the upload route it does not: the
 *   app first authenticates and checks Content-Length, so a refused upload (401, 413, …) is answered before the
 *   client sends a byte of it. The handler sends the 100 when it starts reading ({@link continueIfExpected}).
 */
export function configureHttpBodies(
  server: Server,
  options: HttpBodyOptions = {},
): (req: Request, res: Response, next: NextFunction) => void {
  server.requestTimeout = 0;
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    const route = `${req.method} ${(req.url ?? '').split('?')[0]}`;
    if (!DEFERRED_CONTINUE.has(route)) {
      res.writeContinue();
    }
    server.emit('request', req, res);
  });
  const idleMs = options.bodyIdleTimeoutMs ?? DEFAULT_BODY_IDLE_TIMEOUT_MS;
  return (req, _res, next) => {
    if (hasBody(req)) {
      watchBodyIdle(req, idleMs);
    }
    next();
  };
}

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * Destroys the connection when no byte of this request's body arrives for `idleMs`; stops once the body ends.
 * A socket timeout: Node's HTTP parser resets it on every chunk it reads, and with no 'timeout' listener of the
 * request's own, the server destroys the socket.
 */
function watchBodyIdle(req: IncomingMessage, idleMs: number): void {
  const socket = req.socket;
  socket.setTimeout(idleMs);
  const done = (): void => {
    // Back to the server's own socket timeout (0: none) once the body is in, or the request is over.
    if (!socket.destroyed) {
      socket.setTimeout(0);
    }
  };
  req.once('end', done);
  req.once('close', done);
}

/** Sends `100 Continue` when the client asked for it and waits for it (see configureHttpBodies). */
export function continueIfExpected(req: IncomingMessage): void {
  const res = (req as IncomingMessage & { res?: ServerResponse }).res;
  if (res && !res.headersSent && /100-continue/i.test(String(req.headers.expect ?? ''))) {
    res.writeContinue();
  }
}

/**
 * Call before answering a request whose body will not be read (a 413): reads and throws away what the client is
 * still sending, bounded in bytes and time, and half-closes the connection after the answer instead of destroying
 * it. Destroying a socket with the client's bytes still unread makes the kernel send a reset, which often discarded
 * the 413 before the client read it (curl exit 55, EPIPE in Node). The answer must carry `Connection: close`.
 */
export function discardRestOfBody(req: IncomingMessage, options: { maxBytes?: number; maxMs?: number } = {}): void {
  const socket: Socket = req.socket;
  const maxBytes = options.maxBytes ?? DISCARD_MAX_BYTES;
  let discarded = 0;
  const timer = setTimeout(() => socket.destroy(), options.maxMs ?? DISCARD_MAX_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  // Node ends a `Connection: close` response with destroySoon(): FIN, then destroy. Keep the FIN, skip the destroy
  // (the timer above and the client's own close end it).
  socket.destroySoon = function halfClose(this: Socket): void {
    if (this.writable) {
      this.end();
    }
  };
  req.on('data', (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > maxBytes) {
      socket.destroy();
    }
  });
  req.on('error', () => socket.destroy());
  req.resume();
}
