import { applyDecorators, ExecutionContext, HttpStatus, Injectable } from '@nestjs/common';
import { Throttle, ThrottlerGuard, ThrottlerLimitDetail } from '@nestjs/throttler';
import type { Request, Response } from 'express';
import { ApiRateLimited } from '../auth/decorators';
import type { AuthUser } from '../auth/auth-user';
import { ApiError } from './api-error';

export const BACKUPS_THROTTLER = 'backups';
export const BACKUPS_RATE_LIMIT = { limit: 10, ttl: 60_000 };

/** Backup-changing routes (create, delete, trigger, restore, …) share one budget per user. */
export const BackupsRateLimit = () =>
  applyDecorators(Throttle({ [BACKUPS_THROTTLER]: BACKUPS_RATE_LIMIT }), ApiRateLimited());

const THROTTLER_LIMIT_KEY = 'THROTTLER:LIMIT';

/** The throttler's own header names (less the `-<throttler>` suffix) → the standard ones; others are dropped. */
const STANDARD_HEADERS: Record<string, string> = {
  'X-RateLimit-Limit': 'RateLimit-Limit',
  'X-RateLimit-Remaining': 'RateLimit-Remaining',
  'X-RateLimit-Reset': 'RateLimit-Reset',
};

/**
 * Global, after authentication and roles (so a refused caller never spends budget). Only routes that opt in
 * with a named @Throttle are limited; the key is the user, not the route, so POST and DELETE share a count.
 */
@Injectable()
export class RateLimitGuard extends ThrottlerGuard {
  protected override shouldSkip(context: ExecutionContext): Promise<boolean> {
    const limited = [BACKUPS_THROTTLER].some(
      (name) =>
        this.reflector.getAllAndOverride(THROTTLER_LIMIT_KEY + name, [context.getHandler(), context.getClass()]) !==
        undefined,
    );
    return Promise.resolve(!limited);
  }

  protected override getTracker(req: Record<string, unknown>): Promise<string> {
    const user = (req as { user?: AuthUser }).user;
    if (user) {
      return Promise.resolve(user.id === null ? `key:${user.username}` : `user:${user.id}`);
    }
    return Promise.resolve(`ip:${(req as unknown as Request).ip ?? 'unknown'}`);
  }

  protected override generateKey(_context: ExecutionContext, tracker: string, throttlerName: string): string {
    return `${throttlerName}:${tracker}`;
  }

  /**
   * @nestjs/throttler names its headers after the throttler (`Retry-After-backups`, `X-RateLimit-Limit-backups`).
   * Clients know the standard names: `Retry-After` (set on the 429 below) and the IETF draft's `RateLimit-Limit`,
   * `RateLimit-Remaining` and `RateLimit-Reset` (seconds until the window ends).
   */
  protected override setResponseHeader(res: Response, name: string, value: string | number): void {
    const standard = STANDARD_HEADERS[name.replace(/-[a-z]+$/, '')];
    if (standard !== undefined) {
      res.setHeader(standard, String(value));
    }
  }

  protected override throwThrottlingException(context: ExecutionContext, detail: ThrottlerLimitDetail): Promise<void> {
    const response = context.switchToHttp().getResponse<Response>();
    response.setHeader('Retry-After', String(Math.max(1, detail.timeToBlockExpire)));
    response.setHeader('RateLimit-Limit', String(detail.limit));
    response.setHeader('RateLimit-Remaining', '0');
    response.setHeader('RateLimit-Reset', String(Math.max(1, detail.timeToBlockExpire)));
    throw new ApiError(HttpStatus.TOO_MANY_REQUESTS, 'Rate limit exceeded: wait before trying again');
  }
}
