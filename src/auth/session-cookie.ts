import type { CookieOptions, Response } from 'express';
import type { AppConfig } from '../config/app-config';
import { SESSION_COOKIE } from './decorators';

/** The same attributes on set and clear, or browsers keep the old cookie. */
export function sessionCookieOptions(config: Pick<AppConfig, 'cookieSecure'>): CookieOptions {
  return { httpOnly: true, sameSite: 'strict', secure: config.cookieSecure, path: '/' };
}

/** A Set-Cookie that expires mc-session, so a browser stops sending a session the server no longer knows. */
export function clearSessionCookie(res: Response, config: Pick<AppConfig, 'cookieSecure'>): void {
  res.clearCookie(SESSION_COOKIE, sessionCookieOptions(config));
}
