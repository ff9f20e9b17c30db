import Database from 'better-sqlite3';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { headerProblem } from './sqlite-header';

describe('headerProblem', () => {
  let header: Buffer;

  beforeAll(() => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mc-header-'));
    try {
      const file = path.join(dir, 'a.db');
      const db = new Database(file);
      db.exec('CREATE TABLE t (x)');
      db.close();
      header = fs.readFileSync(file).subarray(0, 100);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  const edited = (offset: number, value: number): Buffer => {
    const copy = Buffer.from(header);
    copy[offset] = value;
    return copy;
  };

  it('should accept the header SQLite writes, in rollback-journal and WAL form', () => {
    expect(headerProblem(header)).toBeNull();
    expect(headerProblem(edited(18, 2).fill(2, 19, 20))).toBeNull();
  });

  it.each([
    [18, 3, /write version 3/],
    [18, 0, /write version 0/],
    [19, 71, /read version 71/],
    [21, 65, /payload fractions/],
    [23, 0, /payload fractions/],
    [47, 5, /schema format 5/],
    [47, 0, /schema format 0/],
    [59, 4, /text encoding 4/],
    [59, 0, /text encoding 0/],
    [72, 1, /reserves/],
    [91, 255, /reserves/],
  ])('should refuse byte %i set to %i', (offset, value, problem) => {
    expect(headerProblem(edited(offset, value))).toMatch(problem);
  });

  it('should refuse a short header', () => {
    expect(headerProblem(header.subarray(0, 99))).toMatch(/shorter/);
  });
});
