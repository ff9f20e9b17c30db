import { HttpStatus, Inject, Injectable } from '@nestjs/common';
import { getStorageToken, ThrottlerStorage, ThrottlerStorageService } from '@nestjs/throttler';
import { ApiError } from '../common/api-error';

export const LOGIN_THROTTLER = 'login';
export const LOGIN_MAX_FAILURES = 5;
export const LOGIN_WINDOW_MS = 60_000;

/**
 * Failed logins per address, counted in @nestjs/throttler's storage. Only failures are counted (a guard
 * would count every attempt), so the check reads the record and `recordFailure` increments it.
 */
@Injectable()
export class LoginThrottle {
  constructor(@Inject(getStorageToken()) private readonly storage: ThrottlerStorage) {}

  /** The seconds left in the window once an address has failed 5 times in it; null while it may try. */
  assertAllowed(ip: string | null): { retryAfterSeconds: number } | null {
    const record = this.record(ip);
    if (!record) {
      return null;
    }
    const now = Date.now();
    const failures = record.totalHits.get(LOGIN_THROTTLER) ?? 0;
    if (failures >= LOGIN_MAX_FAILURES && record.expiresAt > now) {
      return { retryAfterSeconds: Math.max(1, Math.ceil((record.expiresAt - now) / 1000)) };
    }
    return null;
  }

  async recordFailure(ip: string | null): Promise<void> {
    await this.storage.increment(this.key(ip), LOGIN_WINDOW_MS, LOGIN_MAX_FAILURES, 0, LOGIN_THROTTLER);
  }

  static tooMany(retryAfterSeconds: number): ApiError {
    return new ApiError(
      HttpStatus.TOO_MANY_REQUESTS,
      'Too many failed login attempts: wait before trying again',
      {},
      { 'Retry-After': String(retryAfterSeconds) },
    );
  }

  private key(ip: string | null): string {
    return `${LOGIN_THROTTLER}:${ip ?? 'unknown'}`;
  }

  private record(ip: string | null) {
    if (!(this.storage instanceof ThrottlerStorageService)) {
      return undefined;
    }
    return this.storage.storage.get(this.key(ip));
  }
}
