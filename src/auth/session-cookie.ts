import type { CookieOptions, Request, Response } from 'express';
import type { AppConfig } from '../config/app-config';
import { SESSION_COOKIE } from './decorators';

/** The mc-session token the request presents, if any (cookie-parser may also give objects, for `j:` values). */
export function presentedSessionToken(req: Request): string | undefined {
  const token: unknown = (req.cookies as Record<string, unknown> | undefined)?.[SESSION_COOKIE];
  return typeof token === 'string' ? token : undefined;
}

/** The same attributes on set and clear, or browsers keep the old cookie. */
export function sessionCookieOptions(config: Pick<AppConfig, 'cookieSecure'>): CookieOptions {
  return { httpOnly: true, sameSite: 'strict', secure: config.cookieSecure, path: '/' };
}

/** A Set-Cookie that expires mc-session, so a browser stops sending a session the server no longer knows. */
export function clearSessionCookie(res: Response, config: Pick<AppConfig, 'cookieSecure'>): void {
  res.clearCookie(SESSION_COOKIE, sessionCookieOptions(config));
}
