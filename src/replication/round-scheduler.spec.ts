import { RoundScheduler } from './round-scheduler';

/** The scheduler on jest's fake timers and an injected clock: which polls start a round, and which do not. */
describe(RoundScheduler.name, () => {
  let now: number;
  let stamp: string;
  let rounds: number[];
  let ships: boolean;
  let scheduler: RoundScheduler;

  beforeEach(() => {
    jest.useFakeTimers();
    now = 1_000_000;
    stamp = 'a';
    rounds = [];
    ships = true;
    scheduler = new RoundScheduler({
      intervalMs: 1000,
      pollMs: 50,
      now: () => now,
      walStamp: () => stamp,
      run: () => {
        rounds.push(now);
        return Promise.resolve(ships);
      },
    });
    scheduler.start();
  });

  afterEach(() => {
    scheduler.stop();
    jest.useRealTimers();
  });

  /** Advances the clock and the timers together, letting each round's promise settle. */
  async function advance(ms: number): Promise<void> {
    for (let i = 0; i < ms / 50; i++) {
      now += 50;
      await jest.advanceTimersByTimeAsync(50);
    }
  }

  it('should ship at most once per interval while the WAL keeps changing', async () => {
    for (let i = 0; i < 60; i++) {
      stamp = `w${i}`;
      await advance(50);
    }
    // 3 s of constant writes: a round at the start, then one per interval.
    expect(rounds.map((t) => t - rounds[0])).toEqual([0, 1000, 2000]);
  });

  it('should start a round at once when the WAL changes after a quiet spell', async () => {
    await advance(50);
    ships = false;
    await advance(2500);
    const quietRounds = rounds.length;
    stamp = 'new commit';
    await advance(50);
    expect(rounds).toHaveLength(quietRounds + 1);
    // Quiet again: the next heartbeat round comes an interval later, not sooner.
    const last = rounds.at(-1)!;
    await advance(900);
    expect(rounds.at(-1)).toBe(last);
  });

  it('should not start a round while one is running', async () => {
    let finish: (shipped: boolean) => void = () => undefined;
    const slow = new RoundScheduler({
      intervalMs: 100,
      pollMs: 50,
      now: () => now,
      walStamp: () => stamp,
      run: () => {
        rounds.push(now);
        return new Promise<boolean>((resolve) => (finish = resolve));
      },
    });
    scheduler.stop();
    rounds = [];
    slow.start();
    await advance(1000);
    expect(rounds).toHaveLength(1);
    finish(true);
    await advance(100);
    expect(rounds).toHaveLength(2);
    slow.stop();
  });
});
