import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { compiledBuild, runCli } from './helpers/cli-runner';

describe('keys generate --out where the key cannot go', () => {
  let mainJs: string;
  let dir: string;

  beforeAll(() => {
    ({ mainJs } = compiledBuild());
  });

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(tmpdir(), 'mc-cli-keys-'));
  });

  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function generate(out: string): ReturnType<typeof runCli> {
    return runCli(mainJs, path.join(dir, 'mc.db'), ['keys', 'generate', '--out', out]);
  }

  it('should name the missing folder in one line, exit 1 and write nothing', () => {
    const missing = path.join(dir, 'usb-stick', 'keys');
    const run = generate(path.join(missing, 'server.key'));
    expect(run.status).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toBe(`${missing} does not exist (is the drive mounted?); no identity was written\n`);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('should say when the folder is a file', () => {
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'not a folder');
    const run = generate(path.join(dir, 'notes.txt', 'server.key'));
    expect(run.status).toBe(1);
    expect(run.stderr).toBe(`${path.join(dir, 'notes.txt')} is not a folder; no identity was written\n`);
    expect(fs.readdirSync(dir)).toEqual(['notes.txt']);
  });
});
