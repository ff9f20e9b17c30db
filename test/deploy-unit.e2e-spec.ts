import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { loadConfig } from '../src/config/app-config';
import { FORCE_EXIT_MARGIN_MS } from '../src/lifecycle/graceful-shutdown';

const UNIT = path.resolve(__dirname, '..', 'deploy', 'mission-control-backups.service');
const HAS_SYSTEMD_ANALYZE = spawnSync('systemd-analyze', ['--version']).status === 0;

/** The shipped systemd unit (issue #12 item 3). `.ci/run` also runs systemd-analyze verify on it. */
describe('deploy/mission-control-backups.service', () => {
  const text = readFileSync(UNIT, 'utf8');
  const settings = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const match = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (match) {
      settings.set(match[1], [...(settings.get(match[1]) ?? []), match[2]]);
    }
  }
  const one = (key: string): string | undefined => settings.get(key)?.[0];

  it('should run node directly as a dedicated user, with the hardening the README promises', () => {
    expect(one('User')).toBe('mc-backups');
    expect(one('ExecStart')).toMatch(/ node \/opt\/mission-control-backups\/dist\/main\.js$/);
    expect(one('ProtectSystem')).toBe('strict');
    expect(one('NoNewPrivileges')).toBe('yes');
    const dbPath = settings
      .get('Environment')
      ?.find((e) => e.startsWith('MISSION_CONTROL_DB_PATH='))
      ?.split('=')[1];
    expect(dbPath).toBe('/var/lib/mission-control-backups/mission-control.db');
    // The database's folder (and so backups/ inside it) is the one writable path.
    expect(one('ReadWritePaths')).toBe(path.dirname(dbPath ?? ''));
  });

  it('should give the service longer to stop than its own shutdown window', () => {
    const env = Object.fromEntries(
      (settings.get('Environment') ?? []).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]),
    );
    const config = loadConfig(env);
    expect(Number(one('TimeoutStopSec')) * 1000).toBeGreaterThan(config.shutdownTimeoutMs + FORCE_EXIT_MARGIN_MS);
  });

  (HAS_SYSTEMD_ANALYZE ? it : it.skip)('should pass systemd-analyze verify (skipped without systemd-analyze)', () => {
    const result = spawnSync('systemd-analyze', ['verify', UNIT], { encoding: 'utf8' });
    expect({ status: result.status, stderr: result.stderr }).toEqual({ status: 0, stderr: '' });
  });
});
