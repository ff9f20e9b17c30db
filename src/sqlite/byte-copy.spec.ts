import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { copyWithSha256 } from './byte-copy';

describe('copyWithSha256', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mc-byte-copy-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('should copy into a scratch temp name and hash what it wrote', () => {
    const source = path.join(dir, 'a.db');
    // Random, and not a whole number of read or write units: a piece written at the wrong offset shows.
    const bytes = randomBytes(3 * 1024 * 1024 + 17);
    fs.writeFileSync(source, bytes);
    const dest = path.join(dir, '.mc-tmp-0123456789abcdef.db.part');
    const result = copyWithSha256({ op: 'copy', source, dest });
    expect(fs.readFileSync(dest).equals(bytes)).toBe(true);
    expect(fs.statSync(dest).mode & 0o777).toBe(0o600);
    expect(result).toMatchObject({ size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') });
  });

  it('should never open a file that exists, even under a scratch temp name', () => {
    const source = path.join(dir, 'a.db');
    fs.writeFileSync(source, 'new');
    const taken = path.join(dir, '.mc-tmp-0123456789abcdef.db.part');
    fs.writeFileSync(taken, 'held by someone');
    expect(() => copyWithSha256({ op: 'copy', source, dest: taken })).toThrow(/EEXIST/);
    expect(fs.readFileSync(taken, 'utf8')).toBe('held by someone');
  });

  it('should never open anything but a scratch temp name for writing (a live database stays untouched)', () => {
    const source = path.join(dir, 'a.db');
    fs.writeFileSync(source, 'new');
    const live = path.join(dir, 'mission-control.db');
    fs.writeFileSync(live, 'live');
    expect(() => copyWithSha256({ op: 'copy', source, dest: live })).toThrow(/scratch temp file/);
    expect(fs.readFileSync(live, 'utf8')).toBe('live');
  });
});
