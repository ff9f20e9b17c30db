import type { NextFunction, Request, Response } from 'express';

/** Routes that take a raw body instead of JSON. */
const RAW_BODY_ROUTES = new Set(['/api/backup/upload']);

export const SEND_JSON = 'Send the body as JSON, with Content-Type: application/json';

/**
 * A body in anything but JSON (an HTML form, text) would otherwise reach validation as an empty object and come back
 * as one "… is required" line per field; one line saying what to send is what the client needs. 415.
 */
export function requireJsonBody(req: Request, res: Response, next: NextFunction): void {
  const length = req.headers['content-length'];
  const hasBody = (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
  if (!hasBody || RAW_BODY_ROUTES.has(req.path) || req.is(['application/json', '+json'])) {
    next();
    return;
  }
  res.status(415).json({ error: SEND_JSON });
}
