import type { INestApplication } from '@nestjs/common';
import { getStorageToken, ThrottlerStorageService } from '@nestjs/throttler';

/**
 * Forgets every rate-limit count (the backups limit: 10 a minute per user), for tests that call rate-limited routes
 * many times while testing something else. Reaches into ThrottlerStorageService's two maps.
 */
export function freshRateLimits(app: INestApplication): void {
  const storage = app.get<ThrottlerStorageService>(getStorageToken());
  storage.storage.clear();
  (storage as unknown as { hitExpirations: Map<string, unknown> }).hitExpirations.clear();
}
