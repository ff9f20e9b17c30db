import { getStorageToken, ThrottlerStorageService } from '@nestjs/throttler';
import request from 'supertest';
import { hashSessionToken } from '../src/auth/credentials';
import { PROTECTED_ROUTES, ProtectedRoute } from './helpers/protected-routes';
import { API_KEY, createUser, loginCookie, startTestApp, TestApp } from './helpers/test-app';

const UNAUTHENTICATED = { error: 'Authentication required' };
const SESSION_EXPIRED = { ...UNAUTHENTICATED, reason: 'session_expired', message: 'Session expired: log in again' };
const INVALID_KEY = { ...UNAUTHENTICATED, reason: 'invalid_api_key', message: 'Invalid API key' };
const NOT_ADMIN = { error: 'Requires admin role' };
const EXPIRED_TOKEN = 'expired-session-token-for-the-matrix';

type Identity = {
  name: string;
  headers: () => Record<string, string>;
  kind: 'anonymous' | 'viewer' | 'operator' | 'admin';
  /** The 401 body when anonymous: the contract's `error`, and which credentials failed. */
  refused?: Record<string, string>;
};

describe('Authentication matrix (every protected route × every identity)', () => {
  let t: TestApp;
  const cookies: Record<string, string> = {};

  beforeAll(async () => {
    t = await startTestApp();
    cookies.admin = await loginCookie(t.http);
    cookies.viewer = (await createUser(t.http, 'viewer1', 'viewer')).cookie;
    cookies.operator = (await createUser(t.http, 'operator1', 'operator')).cookie;
    await t.dataSource.query('INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES (?, 1, ?, ?)', [
      hashSessionToken(EXPIRED_TOKEN),
      1_000,
      2_000,
    ]);
  });

  // Each case stands alone: the shared per-user backups budget (10 a minute) must not leak between cases.
  beforeEach(() => {
    t.app.get<ThrottlerStorageService>(getStorageToken()).onApplicationShutdown();
  });

  afterAll(async () => {
    await t.close();
  });

  const identities: Identity[] = [
    { name: 'no credentials', kind: 'anonymous', headers: () => ({}), refused: UNAUTHENTICATED },
    {
      name: 'unknown cookie',
      kind: 'anonymous',
      headers: () => ({ Cookie: 'mc-session=not-a-real-session' }),
      refused: SESSION_EXPIRED,
    },
    {
      name: 'expired session',
      kind: 'anonymous',
      headers: () => ({ Cookie: `mc-session=${EXPIRED_TOKEN}` }),
      refused: SESSION_EXPIRED,
    },
    { name: 'wrong key', kind: 'anonymous', headers: () => ({ 'x-api-key': 'wrong-key' }), refused: INVALID_KEY },
    {
      name: 'wrong bearer',
      kind: 'anonymous',
      headers: () => ({ Authorization: 'Bearer wrong-key' }),
      refused: INVALID_KEY,
    },
    { name: 'viewer', kind: 'viewer', headers: () => ({ Cookie: cookies.viewer }) },
    { name: 'operator', kind: 'operator', headers: () => ({ Cookie: cookies.operator }) },
    { name: 'admin cookie', kind: 'admin', headers: () => ({ Cookie: cookies.admin }) },
    { name: 'admin key', kind: 'admin', headers: () => ({ 'x-api-key': API_KEY }) },
    { name: 'admin bearer key', kind: 'admin', headers: () => ({ Authorization: `Bearer ${API_KEY}` }) },
  ];

  function send(route: ProtectedRoute, headers: Record<string, string>) {
    let call = request(t.http)[route.method](route.path);
    for (const [name, value] of Object.entries(headers)) {
      call = call.set(name, value);
    }
    return route.body === undefined ? call : call.send(route.body);
  }

  const cases = PROTECTED_ROUTES.flatMap((route) => identities.map((identity) => ({ route, identity })));

  it.each(cases.map((c) => [`${c.route.method.toUpperCase()} ${c.route.path}`, c.identity.name, c] as const))(
    '%s as %s',
    async (_route, _identity, { route, identity }) => {
      const response = await send(route, identity.headers());
      if (identity.kind === 'anonymous') {
        expect(response.status).toBe(401);
        // /metrics also takes METRICS_TOKEN as its Bearer, and says so.
        const refused =
          route.path === '/metrics' && identity.refused === INVALID_KEY
            ? { ...INVALID_KEY, message: 'Invalid API key or metrics token' }
            : identity.refused;
        expect(response.body).toEqual(refused);
      } else if (identity.kind !== 'admin' && route.role === 'admin') {
        expect(response.status).toBe(403);
        expect(response.body).toEqual(NOT_ADMIN);
      } else {
        expect(response.status).toBe(identity.kind === 'admin' ? route.adminStatus : (route.allowedStatus ?? 200));
        expect(response.body).not.toHaveProperty('error', 'Authentication required');
      }
    },
  );

  it('should cover every route of the OpenAPI document that is not public', async () => {
    const doc = (await request(t.http).get('/api/docs-json').expect(200)).body as {
      paths: Record<string, Record<string, { security?: unknown[] }>>;
    };
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.entries(ops)
        .filter(([, op]) => (op.security ?? []).length > 0)
        .map(([method]) => `${method} ${path.replace(/\{[^}]+\}/g, ':param')}`),
    );
    const covered = new Set(PROTECTED_ROUTES.map((r) => `${r.method} ${r.path.replace(/\/\d+(?=\/|$)/g, '/:param')}`));
    // Logging out would end the sessions the matrix uses; test/auth.e2e-spec.ts covers it.
    covered.add('post /api/auth/logout');
    // Health is public with optional credentials (details for admins): test/hostile-health.e2e-spec.ts covers it.
    covered.add('get /api/health');
    expect(documented.filter((route) => !covered.has(route))).toEqual([]);
  });
});
