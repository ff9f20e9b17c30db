/**
 * Every protected route, with a request an admin can make safely in the auth matrix and the status it
 * answers. Extend this list with each new route: test/auth-matrix.e2e-spec.ts walks all of it.
 */
export interface ProtectedRoute {
  method: 'get' | 'post' | 'put' | 'delete';
  path: string;
  body?: Record<string, unknown>;
  /** The lowest role allowed; below it → 403. */
  role: 'viewer' | 'admin';
  /** What an admin gets with the body above (proves the request passed authentication and roles). */
  adminStatus: number;
  /** What an allowed identity below admin gets (default 200). */
  allowedStatus?: number;
}

export const PROTECTED_ROUTES: ProtectedRoute[] = [
  { method: 'get', path: '/api/auth/me', role: 'viewer', adminStatus: 200 },
  { method: 'get', path: '/api/auth/users', role: 'admin', adminStatus: 200 },
  { method: 'post', path: '/api/auth/users', body: {}, role: 'admin', adminStatus: 400 },
  { method: 'delete', path: '/api/auth/users/999999', role: 'admin', adminStatus: 404 },
  { method: 'post', path: '/api/auth/password', body: {}, role: 'viewer', adminStatus: 400, allowedStatus: 400 },
  {
    method: 'post',
    path: '/api/auth/users/999999/password',
    body: { new_password: 'long-enough-password' },
    role: 'admin',
    adminStatus: 404,
  },
  { method: 'get', path: '/api/settings', role: 'admin', adminStatus: 200 },
  { method: 'put', path: '/api/settings', body: { settings: { 'no.such_key': 1 } }, role: 'admin', adminStatus: 400 },
  { method: 'get', path: '/api/audit', role: 'admin', adminStatus: 200 },
  { method: 'get', path: '/api/backup', role: 'admin', adminStatus: 200 },
  { method: 'post', path: '/api/backup', role: 'admin', adminStatus: 200 },
  {
    method: 'delete',
    path: '/api/backup',
    body: { name: 'mc-backup-2000-01-01_00-00-00.db' },
    role: 'admin',
    adminStatus: 404,
  },
  {
    method: 'post',
    path: '/api/backup/verify',
    body: { name: 'mc-backup-2000-01-01_00-00-00.db' },
    role: 'admin',
    adminStatus: 404,
  },
  { method: 'get', path: '/api/backup/download', role: 'admin', adminStatus: 400 },
  // Replication is off in the matrix's app: the status answers `off`, a snapshot is refused with 400.
  { method: 'get', path: '/api/backup/replication', role: 'admin', adminStatus: 200 },
  { method: 'post', path: '/api/backup/replication/snapshot', role: 'admin', adminStatus: 400 },
  { method: 'post', path: '/api/backup/upload', body: {}, role: 'admin', adminStatus: 415 },
  {
    method: 'post',
    path: '/api/backup/restore',
    body: { name: 'mc-backup-2000-01-01_00-00-00.db' },
    role: 'admin',
    adminStatus: 404,
  },
  // Off-site is not configured in the matrix's app: every remote route answers 400 to an admin.
  { method: 'get', path: '/api/backup/remote', role: 'admin', adminStatus: 400 },
  { method: 'post', path: '/api/backup/remote/sync', role: 'admin', adminStatus: 400 },
  {
    method: 'post',
    path: '/api/backup/remote/verify',
    body: { name: 'mc-backup-2026-01-01_00-00-00.db' },
    role: 'admin',
    adminStatus: 400,
  },
  {
    method: 'post',
    path: '/api/backup/remote/pull',
    body: { name: 'mc-backup-2026-01-01_00-00-00.db' },
    role: 'admin',
    adminStatus: 400,
  },
  { method: 'get', path: '/api/scheduler', role: 'admin', adminStatus: 200 },
  { method: 'post', path: '/api/scheduler', body: { task_id: 'no_such_task' }, role: 'admin', adminStatus: 400 },
  { method: 'get', path: '/metrics', role: 'admin', adminStatus: 200 },
];
