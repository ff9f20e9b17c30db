import { Injectable } from '@nestjs/common';

/** The time source. Injected everywhere time matters, so tests can move it (cron, expiry, names). */
@Injectable()
export class Clock {
  now(): Date {
    return new Date();
  }

  nowMs(): number {
    return this.now().getTime();
  }

  /** Unix seconds, the unit of every `*_at` field in the API. */
  nowSeconds(): number {
    return Math.floor(this.nowMs() / 1000);
  }
}
