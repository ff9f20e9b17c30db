import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { staleReason, sourceFingerprint } = require('../scripts/built.js') as {
  staleReason: (root: string) => string | null;
  sourceFingerprint: (root: string) => string | null;
};

/**
 * `npm start`, `npm run cli` and the package's bin run dist/ and rebuild only when it is missing or stale: the
 * decision, on a scratch tree with chosen modification times (building for real is covered by shutdown.e2e's
 * `npm start` test and cli.e2e's `npm run cli` test).
 */
describe('scripts/built.js staleReason', () => {
  let root: string;
  const at = (file: string, seconds: number): void => {
    const full = path.join(root, file);
    fs.mkdirSync(path.dirname(full), { recursive: true });
    if (!fs.existsSync(full)) {
      fs.writeFileSync(full, '');
    }
    fs.utimesSync(full, seconds, seconds);
  };

  beforeEach(() => {
    root = fs.mkdtempSync(path.join(tmpdir(), 'mc-launcher-'));
    at('src/main.ts', 1000);
    at('src/cli/main.ts', 1000);
    at('tsconfig.json', 1000);
  });

  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  it('should build when dist/ is missing, or either entry point is', () => {
    expect(staleReason(root)).toBe('dist/ is missing');
    at('dist/main.js', 2000);
    expect(staleReason(root)).toBe('dist/ is missing');
    at('dist/cli/main.js', 2000);
    expect(staleReason(root)).toBeNull();
  });

  it('should rebuild when a source or the TypeScript configuration is newer than the build', () => {
    at('dist/main.js', 2000);
    at('dist/cli/main.js', 2000);
    at('src/backups/backup-files.ts', 3000);
    expect(staleReason(root)).toBe('the sources changed since the last build');
    at('src/backups/backup-files.ts', 1500);
    at('tsconfig.build.json', 2500);
    expect(staleReason(root)).toBe('the sources changed since the last build');
  });

  it('should not rebuild for a changed unit spec (specs are not part of the build)', () => {
    at('dist/main.js', 2000);
    at('dist/cli/main.js', 2000);
    at('src/backups/backup-files.spec.ts', 3000);
    expect(staleReason(root)).toBeNull();
  });

  it('should run an installed package without sources as it is', () => {
    fs.rmSync(path.join(root, 'src'), { recursive: true });
    fs.rmSync(path.join(root, 'tsconfig.json'));
    at('dist/main.js', 2000);
    at('dist/cli/main.js', 2000);
    expect(staleReason(root)).toBeNull();
  });

  describe('with the stamp a build leaves', () => {
    const stamp = (): void =>
      fs.writeFileSync(path.join(root, 'dist', '.sources-stamp'), `${sourceFingerprint(root)}\n`);

    beforeEach(() => {
      at('src/backups/backup-files.ts', 1000);
      at('dist/main.js', 2000);
      at('dist/cli/main.js', 2000);
      stamp();
    });

    it('should be current while the inputs are the ones the build started from', () => {
      expect(staleReason(root)).toBeNull();
    });

    it('should rebuild after an edit made while the build ran, though dist/ is newer than it', () => {
      // The build took its fingerprint at its start; the edit landed before the build wrote dist/.
      fs.writeFileSync(path.join(root, 'src/backups/backup-files.ts'), 'export const edited = true;\n');
      at('src/backups/backup-files.ts', 1500);
      expect(staleReason(root)).toBe('the sources changed since the last build');
    });

    it('should rebuild when a source was deleted or renamed', () => {
      fs.renameSync(path.join(root, 'src/backups/backup-files.ts'), path.join(root, 'src/backups/files.ts'));
      expect(staleReason(root)).toBe('the sources changed since the last build');
    });
  });
});
