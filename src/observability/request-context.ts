import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

export const REQUEST_ID_HEADER = 'X-Request-Id';
/** The route label of a request no route matched (404s, body-parser errors): keeps label cardinality bounded. */
export const UNMATCHED_ROUTE = '(unmatched)';

/** Short, printable, no spaces or quotes: safe to echo in a header and to put in a log line. */
const SANE_REQUEST_ID = /^[A-Za-z0-9._:@=+-]{1,128}$/;

/** An incoming `X-Request-Id` when it is a sane token, else a fresh UUID; echoed in the response header. */
export function assignRequestId(req: IncomingMessage, res: ServerResponse): string {
  const incoming = req.headers['x-request-id'];
  const id = typeof incoming === 'string' && SANE_REQUEST_ID.test(incoming) ? incoming : randomUUID();
  res.setHeader(REQUEST_ID_HEADER, id);
  return id;
}

/**
 * The pattern of the route Express matched (`/api/auth/users/:id`), never the raw URL: no ids, no query
 * string. Read when the response finishes, after routing. A wildcard pattern is the catch-all mount of a Nest
 * middleware (the request logger's `/api/{*splat}`), left on requests no controller route matched.
 */
export function routePattern(req: IncomingMessage): string {
  const route = (req as IncomingMessage & { route?: { path?: unknown } }).route;
  return typeof route?.path === 'string' && !route.path.includes('*') ? route.path : UNMATCHED_ROUTE;
}

/** The authenticated user's name (`api-key` for the API key), or null before/without authentication. */
export function requestUser(req: IncomingMessage): string | null {
  const username = (req as IncomingMessage & { user?: { username?: unknown } }).user?.username;
  return typeof username === 'string' ? username : null;
}
