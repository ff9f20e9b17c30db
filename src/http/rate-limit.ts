import { applyDecorators, ExecutionContext, HttpStatus, Injectable } from '@nestjs/common';
import {
  Throttle,
  ThrottlerGuard,
  ThrottlerLimitDetail,
  ThrottlerRequest,
  ThrottlerStorageService,
} from '@nestjs/throttler';
import type { Request, Response } from 'express';
import { ApiRateLimited } from '../auth/decorators';
import type { AuthUser } from '../auth/auth-user';
import { ApiError, InputError } from '../common/api-error';

export const BACKUPS_THROTTLER = 'backups';
export const BACKUPS_RATE_LIMIT = { limit: 10, ttl: 60_000 };

/** Backup-changing routes (create, delete, trigger, restore, …) share one budget per user. */
export const BackupsRateLimit = () =>
  applyDecorators(Throttle({ [BACKUPS_THROTTLER]: BACKUPS_RATE_LIMIT }), ApiRateLimited());

const THROTTLER_LIMIT_KEY = 'THROTTLER:LIMIT';

/** For each request that spent budget: how to give it back (see RateLimitRefundInterceptor). */
const refunds = new WeakMap<object, () => void>();

/** The throttler's in-memory storage, plus taking back the newest hit of a key. */
@Injectable()
export class RateLimitStorage extends ThrottlerStorageService {
  refund(key: string, throttlerName: string): void {
    // The parent keeps one expiry time per hit and recounts from them on every increment, but offers no way to take
    // one back; rate-limit.spec.ts pins this use of its internals against the installed version.
    const internals = this as unknown as { hitExpirations: Map<string, Map<string, number[]>> };
    const hits = internals.hitExpirations.get(key)?.get(throttlerName);
    const record = this.storage.get(key);
    if (hits === undefined || record === undefined || hits.length === 0 || record.isBlocked) {
      return;
    }
    hits.pop();
    record.totalHits.set(throttlerName, hits.length);
  }
}

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

  protected override async handleRequest(props: ThrottlerRequest): Promise<boolean> {
    const allowed = await super.handleRequest(props);
    const storage = this.storageService;
    if (allowed && storage instanceof RateLimitStorage) {
      const { req } = this.getRequestResponse(props.context);
      const name = props.throttler.name ?? BACKUPS_THROTTLER;
      const key = props.generateKey(props.context, await props.getTracker(req, props.context), name);
      refunds.set(req, () => storage.refund(key, name));
    }
    return allowed;
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
    const wait = String(Math.max(1, detail.timeToBlockExpire));
    response.setHeader('RateLimit-Limit', String(detail.limit));
    response.setHeader('RateLimit-Remaining', '0');
    response.setHeader('RateLimit-Reset', wait);
    throw new ApiError(
      HttpStatus.TOO_MANY_REQUESTS,
      'Rate limit exceeded: wait before trying again',
      {},
      {
        'Retry-After': wait,
      },
    );
  }
}

/**
 * A request refused for its input (InputError: a malformed body, a bad name) before any work gives back what it
 * spent of the rate limit: the limit guards the work a request causes, and a refused one caused none. Called by the
 * exception filter, which sees every error of a route, pipes' (a ValidationPipe refusal) and the handler's alike.
 *
 * Not a global interceptor, as it was: with any interceptor, Nest wraps every request of every route in two
 * `AsyncResource.bind` calls, and on Node 20 each of those makes two deprecated accessor functions whose prototype it
 * then changes, which V8 keeps alive through minor collections (see src/http/express-prototypes.ts).
 */
export function refundRefusedInput(req: object, error: unknown): void {
  if (error instanceof InputError) {
    refunds.get(req)?.();
    refunds.delete(req);
  }
}
