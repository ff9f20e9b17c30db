import type { IncomingMessage, ServerResponse } from 'node:http';
import pino from 'pino';
import { loadConfig } from '../config/app-config';
import { logDestination, pinoHttpOptions, REDACTED_PATHS } from './logging';
import { assignRequestId, routePattern, UNMATCHED_ROUTE } from './request-context';

function fakeResponse(): ServerResponse & { headers: Record<string, string> } {
  const headers: Record<string, string> = {};
  return { headers, setHeader: (name: string, value: string) => (headers[name] = value) } as never;
}

function capture(): { stream: { write(chunk: string): void }; text: () => string } {
  const chunks: string[] = [];
  return { stream: { write: (chunk: string) => void chunks.push(chunk) }, text: () => chunks.join('') };
}

describe('assignRequestId', () => {
  it.each(['abc', 'trace-1234.abc', 'a:b@c=d+e_f', '0f8fad5b-d9cb-469f-a165-70867728950e'])(
    'should keep the sane incoming id %j and echo it',
    (incoming) => {
      const res = fakeResponse();
      expect(assignRequestId({ headers: { 'x-request-id': incoming } } as never, res)).toBe(incoming);
      expect(res.headers['X-Request-Id']).toBe(incoming);
    },
  );

  it.each(['', 'has space', 'quote"d', 'new\nline', '<script>', 'x'.repeat(129)])(
    'should replace %j by a generated UUID',
    (incoming) => {
      const res = fakeResponse();
      const id = assignRequestId({ headers: { 'x-request-id': incoming } } as never, res);
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      expect(res.headers['X-Request-Id']).toBe(id);
    },
  );
});

describe('routePattern', () => {
  it('should give the matched pattern, or a fixed label when none or only a middleware catch-all matched', () => {
    expect(routePattern({ route: { path: '/api/auth/users/:id' } } as unknown as IncomingMessage)).toBe(
      '/api/auth/users/:id',
    );
    expect(routePattern({} as IncomingMessage)).toBe(UNMATCHED_ROUTE);
    expect(routePattern({ route: { path: '/api/{*splat}' } } as unknown as IncomingMessage)).toBe(UNMATCHED_ROUTE);
  });
});

describe('logging options', () => {
  it('should honour LOG_LEVEL', () => {
    expect(pinoHttpOptions(loadConfig({ LOG_LEVEL: 'warn' })).level).toBe('warn');
    expect(pinoHttpOptions(loadConfig({})).level).toBe('info');
  });

  it('should censor credentials in headers if they are ever logged', () => {
    const out = capture();
    const logger = pino({ redact: { paths: REDACTED_PATHS, censor: '[redacted]' } }, out.stream);
    logger.info({
      req: { headers: { cookie: 'mc-session=s3cret', authorization: 'Bearer k3y', 'x-api-key': 'k3y', host: 'h' } },
      res: { headers: { 'set-cookie': 'mc-session=s3cret' } },
      password: 'pa55',
    });
    expect(out.text()).not.toMatch(/s3cret|k3y|pa55/);
    expect(out.text()).toContain('"host":"h"');
  });

  it('should write to the given stream, else JSON on stdout in production', () => {
    const out = capture();
    expect(logDestination(loadConfig({}), out.stream)).toBe(out.stream);
    expect(logDestination(loadConfig({ NODE_ENV: 'production' }))).toBeDefined();
  });
});
