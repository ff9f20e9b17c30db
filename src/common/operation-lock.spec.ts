import { Logger } from '@nestjs/common';
import { OperationLock } from './operation-lock';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

async function settle(): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve));
}

describe(OperationLock.name, () => {
  it('should tell the restore from everything else while it runs, and nothing after', async () => {
    const lock = new OperationLock();
    const finish = deferred();
    const seen: Array<[boolean, boolean]> = [];
    const restore = lock.runExclusive('restore', async () => {
      seen.push([lock.insideRun, lock.writesHeld]);
      await settle();
      // Still the restore's own flow after an await.
      seen.push([lock.insideRun, lock.writesHeld]);
      await finish.promise;
    });
    await settle();
    expect(lock.running).toBe('restore');
    expect([lock.insideRun, lock.writesHeld]).toEqual([false, true]);
    finish.resolve();
    await restore;
    expect(seen).toEqual([
      [true, false],
      [true, false],
    ]);
    expect([lock.running, lock.writesHeld]).toEqual([null, false]);
  });

  it('should not hold writes during a backup', async () => {
    const lock = new OperationLock();
    const finish = deferred();
    const backup = lock.runExclusive('backup', () => finish.promise);
    await settle();
    expect([lock.running, lock.writesHeld]).toEqual(['backup', false]);
    finish.resolve();
    await backup;
  });

  it('should not count a flow the restore left behind as part of a later restore', async () => {
    const lock = new OperationLock();
    const later = deferred();
    let straggler!: Promise<boolean>;
    await lock.runExclusive('restore', () => {
      // A continuation registered inside the first restore (a listener's timer, say) that runs during the second.
      straggler = later.promise.then(() => lock.insideRun);
      return Promise.resolve();
    });
    const finish = deferred();
    const second = lock.runExclusive('restore', () => finish.promise);
    await settle();
    expect(lock.running).toBe('restore');
    later.resolve();
    expect(await straggler).toBe(false);
    finish.resolve();
    await second;
  });

  it('should call finish listeners before the caller resumes, and release restoreFinished() waiters after', async () => {
    const lock = new OperationLock();
    const order: string[] = [];
    lock.onFinished((operation) => order.push(`listener:${operation}`));
    expect(await Promise.race([lock.restoreFinished().then(() => 'at once'), settle().then(() => 'waited')])).toBe(
      'at once',
    );
    const finish = deferred();
    const restore = lock.runExclusive('restore', () => finish.promise).then(() => order.push('caller'));
    await settle();
    const waiter = lock.restoreFinished().then(() => order.push('waiter'));
    await settle();
    expect(order).toEqual([]);
    finish.resolve();
    await Promise.all([restore, waiter]);
    expect(order[0]).toBe('listener:restore');
    expect(order).toHaveLength(3);
  });

  it('should survive a throwing listener', async () => {
    const logged = jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    const lock = new OperationLock();
    const called: string[] = [];
    lock.onFinished(() => {
      throw new Error('boom');
    });
    lock.onFinished((operation) => called.push(operation));
    await lock.runExclusive('restore', () => Promise.resolve());
    expect(called).toEqual(['restore']);
    expect(logged).toHaveBeenCalledWith('After the restore: Error: boom');
    logged.mockRestore();
  });
});
