/**
 * Child process of bench/memory.bench.ts: `clients` loops, each sending one request of a weighted mix after the
 * other to every target app (the same request to each, so variants get the same load), until told to stop.
 */
export interface LoadStart {
  type: 'start';
  targets: Array<{ url: string; apiKey: string }>;
  clients: number;
}
export type LoadCommand = LoadStart | { type: 'stop' };
export type LoadReply = { type: 'ready' } | { type: 'done'; requests: number; byStatus: Record<string, number> };

type Request = { method: string; path: string; body?: unknown; auth: boolean };

/** What a busy admin UI and a monitor do: reads mostly, some writes, a backup or a download now and then. */
const MIX: Array<[number, () => Request]> = [
  [30, () => ({ method: 'GET', path: '/api/health', auth: false })],
  [10, () => ({ method: 'GET', path: '/api/health', auth: true })],
  [12, () => ({ method: 'GET', path: '/api/backup', auth: true })],
  [10, () => ({ method: 'GET', path: '/api/audit?limit=100', auth: true })],
  [8, () => ({ method: 'GET', path: '/api/settings', auth: true })],
  [8, () => ({ method: 'GET', path: '/api/metrics', auth: true })],
  [6, () => ({ method: 'GET', path: '/api/auth/me', auth: true })],
  [4, () => ({ method: 'GET', path: '/api/scheduler', auth: true })],
  [
    8,
    () => ({
      method: 'PUT',
      path: '/api/settings',
      body: { settings: { 'general.backup_retention_count': 10 + Math.floor(Math.random() * 3) } },
      auth: true,
    }),
  ],
  [2, () => ({ method: 'POST', path: '/api/backup', auth: true })],
  [1, () => ({ method: 'GET', path: '/api/backup/download?name=latest', auth: true })],
  [
    1,
    () => ({ method: 'POST', path: '/api/auth/login', body: { username: 'nobody', password: 'wrong' }, auth: false }),
  ],
];
const TOTAL = MIX.reduce((sum, [weight]) => sum + weight, 0);

function pick(): Request {
  let roll = Math.random() * TOTAL;
  for (const [weight, make] of MIX) {
    roll -= weight;
    if (roll < 0) {
      return make();
    }
  }
  return MIX[0][1]();
}

let running = false;
let requests = 0;
const byStatus: Record<string, number> = {};
let latest: Record<string, string> = {};

async function send(target: { url: string; apiKey: string }, request: Request): Promise<void> {
  let requestPath = request.path;
  if (requestPath.includes('name=latest')) {
    const name = latest[target.url];
    if (!name) {
      return;
    }
    requestPath = requestPath.replace('latest', encodeURIComponent(name));
  }
  const headers: Record<string, string> = {};
  if (request.auth) {
    headers['x-api-key'] = target.apiKey;
  }
  if (request.body !== undefined) {
    headers['content-type'] = 'application/json';
  }
  try {
    const response = await fetch(`${target.url}${requestPath}`, {
      method: request.method,
      headers,
      body: request.body === undefined ? undefined : JSON.stringify(request.body),
    });
    const body = await response.arrayBuffer();
    requests += 1;
    byStatus[response.status] = (byStatus[response.status] ?? 0) + 1;
    if (request.path === '/api/backup' && request.method === 'GET' && response.status === 200) {
      const list = JSON.parse(Buffer.from(body).toString('utf8')) as { backups?: Array<{ name: string }> };
      latest = { ...latest, [target.url]: list.backups?.[0]?.name ?? '' };
    }
  } catch {
    byStatus.error = (byStatus.error ?? 0) + 1;
  }
}

async function client(targets: LoadStart['targets']): Promise<void> {
  while (running) {
    const request = pick();
    await Promise.all(targets.map((target) => send(target, request)));
  }
}

if (process.send !== undefined) {
  let loops: Promise<void>[] = [];
  process.on('message', (command: LoadCommand) => {
    if (command.type === 'start') {
      running = true;
      loops = Array.from({ length: command.clients }, () => client(command.targets));
    } else {
      running = false;
      void Promise.all(loops).then(() => process.send?.({ type: 'done', requests, byStatus } satisfies LoadReply));
    }
  });
  process.once('disconnect', () => process.exit(0));
  process.send({ type: 'ready' } satisfies LoadReply);
}
