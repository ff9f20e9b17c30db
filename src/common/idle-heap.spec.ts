import type { NextFunction, Request, Response } from 'express';
import { exposedGc, IdleHeapRelease } from './idle-heap';

describe('IdleHeapRelease', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  function hit(idle: IdleHeapRelease, n: number): void {
    for (let i = 0; i < n; i++) {
      idle.middleware({} as Request, {} as Response, (() => undefined) as NextFunction);
    }
  }

  it('collects once when the request rate falls quiet after a burst, never while requests keep coming', () => {
    const gc = jest.fn();
    const idle = new IdleHeapRelease(gc, 1000, 10, 2);
    hit(idle, 9);
    jest.advanceTimersByTime(5000);
    expect(gc).not.toHaveBeenCalled();
    hit(idle, 1);
    for (let i = 0; i < 5; i++) {
      hit(idle, 3);
      jest.advanceTimersByTime(1000);
    }
    expect(gc).not.toHaveBeenCalled();
    // A monitor's health check or two per window is quiet enough.
    hit(idle, 2);
    jest.advanceTimersByTime(1000);
    expect(gc).toHaveBeenCalledTimes(1);
    hit(idle, 3);
    jest.advanceTimersByTime(10_000);
    expect(gc).toHaveBeenCalledTimes(1);
  });

  it('does nothing without a gc function', () => {
    const idle = new IdleHeapRelease(null, 1000, 1);
    hit(idle, 5);
    jest.advanceTimersByTime(5000);
    expect(idle.collections).toBe(0);
  });

  it('finds V8 gc without a start-up flag', () => {
    expect(typeof exposedGc()).toBe('function');
  });
});
