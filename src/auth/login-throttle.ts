import { HttpStatus, Injectable } from '@nestjs/common';
import { ApiError } from '../common/api-error';
import { Clock } from '../common/clock';

export const LOGIN_MAX_FAILURES = 5;
export const LOGIN_WINDOW_MS = 60_000;
/** Addresses tracked before expired windows are swept (bounds memory under a spray of addresses). */
const SWEEP_AT_SIZE = 10_000;

interface Window {
  /** Failed attempts in this window. */
  failures: number;
  /** Attempts reserved and still being checked (their password hash is running). */
  pending: number;
  expiresAt: number;
  /** Attempts waiting for a pending one to settle: its outcome decides whether they may go on. */
  waiters: Array<() => void>;
}

/** One attempt that passed the limit; exactly one of `failed` or `succeeded` must be called. */
export interface LoginReservation {
  failed(): void;
  succeeded(): void;
}

/**
 * Failed logins per address: 5 in a minute, then 429 until that minute is over; successful logins do not count.
 *
 * An attempt is reserved *before* the password hash and settled after it (checking before the
 * hash and counting after it let 200 parallel attempts through). Check and reservation are one synchronous step on
 * the event loop, so no two requests can both take the last slot. A success releases its slot; a failure keeps it.
 */
@Injectable()
export class LoginThrottle {
  private readonly windows = new Map<string, Window>();

  constructor(private readonly clock: Clock) {}

  /**
   * A reservation, or the seconds to wait when this address has used up its attempts. While the free slots are all
   * held by attempts still being checked, a new one waits for them to settle instead of being refused: successful
   * logins never count, so parallel good logins all get through, and parallel bad ones are refused once 5 failed.
   */
  async reserve(ip: string | null): Promise<{ reservation: LoginReservation } | { retryAfterSeconds: number }> {
    const key = ip ?? 'unknown';
    for (;;) {
      const now = this.clock.nowMs();
      let window = this.windows.get(key);
      if (!window || window.expiresAt <= now) {
        this.sweep(now);
        window = { failures: 0, pending: 0, expiresAt: now + LOGIN_WINDOW_MS, waiters: [] };
        this.windows.set(key, window);
      }
      if (window.failures >= LOGIN_MAX_FAILURES) {
        return { retryAfterSeconds: Math.max(1, Math.ceil((window.expiresAt - now) / 1000)) };
      }
      if (window.failures + window.pending < LOGIN_MAX_FAILURES) {
        // Check and take in one synchronous step: no other request runs in between.
        window.pending += 1;
        return { reservation: this.reservation(key, window) };
      }
      const held = window;
      await new Promise<void>((resolve) => held.waiters.push(resolve));
    }
  }
  static tooMany(retryAfterSeconds: number): ApiError {
    return new ApiError(
      HttpStatus.TOO_MANY_REQUESTS,
      'Too many failed login attempts: wait before trying again',
      {},
      { 'Retry-After': String(retryAfterSeconds) },
    );
  }

  private reservation(key: string, held: Window): LoginReservation {
    let settled = false;
    const settle = (failed: boolean): void => {
      if (settled) {
        return;
      }
      settled = true;
      held.pending -= 1;
      if (failed) {
        held.failures += 1;
      }
      // Every waiter re-checks; those that find no free slot wait again.
      const waiters = held.waiters.splice(0);
      if (held.failures === 0 && held.pending === 0 && waiters.length === 0 && this.windows.get(key) === held) {
        this.windows.delete(key);
      }
      waiters.forEach((wake) => wake());
    };
    return { failed: () => settle(true), succeeded: () => settle(false) };
  }

  private sweep(now: number): void {
    if (this.windows.size < SWEEP_AT_SIZE) {
      return;
    }
    for (const [key, window] of this.windows) {
      if (window.expiresAt <= now && window.pending === 0 && window.waiters.length === 0) {
        this.windows.delete(key);
      }
    }
  }
}
