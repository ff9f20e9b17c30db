import { RateLimitStorage } from './rate-limit';

describe(RateLimitStorage.name, () => {
  const TTL = 60_000;
  let storage: RateLimitStorage;

  beforeEach(() => {
    storage = new RateLimitStorage();
  });

  afterEach(() => {
    storage.onApplicationShutdown();
  });

  const hit = (key = 'backups:user:1') => storage.increment(key, TTL, 3, TTL, 'backups');

  describe('refund', () => {
    it('should give back the newest hit, so the next request counts as if it never happened', async () => {
      await hit();
      await hit();
      storage.refund('backups:user:1', 'backups');
      expect(await hit()).toMatchObject({ totalHits: 2, isBlocked: false });
      expect(await hit()).toMatchObject({ totalHits: 3, isBlocked: false });
      expect(await hit()).toMatchObject({ isBlocked: true });
    });

    it('should leave a blocked key blocked, and other keys and unknown keys alone', async () => {
      for (let i = 0; i < 4; i++) {
        await hit();
      }
      storage.refund('backups:user:1', 'backups');
      expect(await hit()).toMatchObject({ isBlocked: true });
      await hit('backups:user:2');
      storage.refund('backups:user:3', 'backups');
      storage.refund('backups:user:2', 'other');
      expect(await hit('backups:user:2')).toMatchObject({ totalHits: 2 });
    });

    it('should never count below zero', async () => {
      await hit();
      storage.refund('backups:user:1', 'backups');
      storage.refund('backups:user:1', 'backups');
      expect(await hit()).toMatchObject({ totalHits: 1 });
    });
  });
});
