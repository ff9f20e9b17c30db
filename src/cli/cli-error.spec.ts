import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { systemErrorLine } from './cli-error';

describe('systemErrorLine', () => {
  it("should give Node's one-line message for an operating-system refusal", () => {
    const missing = path.join(tmpdir(), 'mc-no-such-folder-for-this-test', 'x');
    let caught: unknown;
    try {
      fs.openSync(missing, 'r');
    } catch (error) {
      caught = error;
    }
    expect(systemErrorLine(caught)).toBe(`ENOENT: no such file or directory, open '${missing}'`);
  });

  it('should leave any other error to be reported with its stack', () => {
    expect(systemErrorLine(new TypeError('x is undefined'))).toBeUndefined();
    expect(systemErrorLine(Object.assign(new Error('no syscall'), { code: 'ERR_X' }))).toBeUndefined();
    expect(systemErrorLine('ENOENT')).toBeUndefined();
    expect(systemErrorLine(undefined)).toBeUndefined();
  });
});
