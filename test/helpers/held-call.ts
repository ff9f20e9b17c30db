import { startTestApp, type TestApp } from './test-app';

/**
 * A call stopped at a chosen point until the test lets it go: the widest possible race window, made on demand.
 * The held code calls `hold(value)`; the test awaits `reached` (which gives that value), acts, then `release()`s.
 */
export interface HeldCall<T> {
  reached: Promise<T>;
  release(): void;
  hold(value: T): Promise<void>;
}

export function heldCall<T = void>(): HeldCall<T> {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let arrive!: (value: T) => void;
  const reached = new Promise<T>((resolve) => (arrive = resolve));
  return {
    reached,
    release,
    hold: async (value: T) => {
      arrive(value);
      await released;
    },
  };
}

/**
 * A fresh app for every test of the calling `describe`, closed after it with every spy restored. `restart(env)`
 * swaps it for one started with more environment, for a test that needs it.
 */
export function appPerTest(): { readonly t: TestApp; restart(env: Record<string, string>): Promise<void> } {
  const current: { t?: TestApp } = {};
  beforeEach(async () => {
    current.t = await startTestApp();
  });
  afterEach(async () => {
    jest.restoreAllMocks();
    await current.t?.close();
  });
  return {
    async restart(env: Record<string, string>): Promise<void> {
      await current.t?.close();
      current.t = undefined;
      current.t = await startTestApp(env);
    },
    get t(): TestApp {
      if (current.t === undefined) {
        throw new Error('appPerTest: no app outside a test');
      }
      return current.t;
    },
  };
}
