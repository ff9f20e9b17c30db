/**
 * A pino destination that keeps the app's log lines with the running test (see test/jest-environment.js, which
 * prints them only when the test fails). Lines written outside a test (beforeAll/afterAll) are kept for the next.
 */
export const testLogStream = {
  write(chunk: string): void {
    const holder = globalThis as { __mcTestLogs?: string[] };
    (holder.__mcTestLogs ??= []).push(chunk);
  },
};
