import type { Request } from 'express';

/** Who asked, from where: what every audit entry records. */
export interface RequestMeta {
  ip: string | null;
  userAgent: string | null;
}

/** `req.ip` honours Express's `trust proxy`, which is set only from TRUSTED_PROXIES; else it is the socket. */
export function requestMeta(req: Request): RequestMeta {
  const userAgent = req.headers['user-agent'];
  return {
    ip: req.ip ?? req.socket.remoteAddress ?? null,
    userAgent: typeof userAgent === 'string' ? userAgent.slice(0, 512) : null,
  };
}
