import type { OpenAPIObject } from '@nestjs/swagger';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';

type Json = Record<string, unknown>;
interface MediaObject {
  schema?: unknown;
  example?: unknown;
  examples?: Record<string, { summary?: string; value: unknown }>;
}
interface ResponseObject {
  description?: string;
  content?: Record<string, MediaObject>;
  headers?: Record<string, unknown>;
}
interface OperationObject {
  summary?: string;
  security?: unknown[];
  responses: Record<string, ResponseObject>;
}

const ERROR_SCHEMA = { $ref: '#/components/schemas/ErrorResponseDto' };
const RETRY_AFTER = { description: 'Seconds to wait before trying again', schema: { type: 'integer', example: 42 } };
const RESTORING = 'A restore is in progress: try again shortly';

/** The version in package.json (the document must not claim another). */
export function packageVersion(): string {
  const file = path.join(__dirname, '..', '..', 'package.json');
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

/** The message a 404 of this path really carries. */
function notFoundMessage(route: string): string {
  if (route.startsWith('/api/auth/users')) {
    return 'User not found';
  }
  if (route.startsWith('/api/backup')) {
    return 'Backup not found';
  }
  return 'Not found';
}

function setExamples(response: ResponseObject, examples: Record<string, { summary: string; value: Json }>): void {
  const media: MediaObject = response.content?.['application/json'] ?? { schema: ERROR_SCHEMA };
  response.content = { ...(response.content ?? {}), 'application/json': media };
  const entries = Object.entries(examples);
  if (entries.length === 1) {
    media.example = entries[0][1].value;
    delete media.examples;
  } else {
    media.examples = examples;
    delete media.example;
  }
}

/**
 * Swagger UI showed every error as the generic `{"error":"string","details":["string"]}` and every success with an
 * empty description. This fills in, for every operation: the real body of each error status it can answer (401,
 * 403 by role or by CSRF, 404 per resource, 429 with Retry-After, 500 of a backup), a 503 with Retry-After on every
 * authenticated change (refused while a restore runs or the service stops), and the summary as the description of
 * a success that has none.
 */
/** The 401s of a request whose credentials failed: the contract's error, and which ones (auth/unauthenticated.ts). */
const UNAUTHENTICATED_WITH_REASON: Record<string, { summary: string; value: Json }> = {
  invalid_api_key: {
    summary: 'A wrong API key',
    value: { error: 'Authentication required', reason: 'invalid_api_key', message: 'Invalid API key' },
  },
  session_expired: {
    summary: 'An expired, unknown or logged-out session cookie (the response also expires the cookie)',
    value: { error: 'Authentication required', reason: 'session_expired', message: 'Session expired: log in again' },
  },
};

export function documentErrorExamples(original: OpenAPIObject): OpenAPIObject {
  // Nest shares one response object between the operations that use the same decorator: edit a private copy.
  const document = JSON.parse(JSON.stringify(original)) as OpenAPIObject;
  for (const [route, item] of Object.entries(document.paths)) {
    for (const [method, value] of Object.entries(item as Record<string, unknown>)) {
      const operation = value as OperationObject;
      if (typeof operation !== 'object' || operation === null || operation.responses === undefined) {
        continue;
      }
      const responses = operation.responses;
      const authenticated = (operation.security ?? []).length > 0;
      const mutating = method !== 'get';
      for (const [code, response] of Object.entries(responses)) {
        if (code.startsWith('2') && !response.description) {
          response.description = operation.summary ?? 'Success';
        }
      }
      if (responses['401']) {
        setExamples(responses['401'], {
          unauthenticated: { summary: 'No credentials', value: { error: 'Authentication required' } },
          ...(authenticated ? UNAUTHENTICATED_WITH_REASON : {}),
        });
      }
      if (responses['403']) {
        const byRole = /Requires the admin role/.test(responses['403'].description ?? '');
        const examples: Record<string, { summary: string; value: Json }> = {};
        if (byRole) {
          examples.role = { summary: 'Signed in below admin', value: { error: 'Requires admin role' } };
        }
        if (mutating && authenticated) {
          examples.csrf = {
            summary: 'A cookie request from another origin',
            value: { error: 'CSRF origin mismatch' },
          };
        }
        if (Object.keys(examples).length > 0) {
          setExamples(responses['403'], examples);
        }
      }
      if (responses['404']) {
        setExamples(responses['404'], {
          missing: { summary: 'No such item', value: { error: notFoundMessage(route) } },
        });
      }
      if (responses['429']) {
        const login = route === '/api/auth/login' || route === '/api/auth/password';
        const message = login
          ? 'Too many failed login attempts: wait before trying again'
          : 'Rate limit exceeded: wait before trying again';
        setExamples(responses['429'], {
          limited: { summary: 'Over the limit', value: { error: message, retry_after_seconds: 42 } },
        });
        responses['429'].headers = { 'Retry-After': RETRY_AFTER, ...(responses['429'].headers ?? {}) };
      }
      if (responses['500'] && route === '/api/backup' && method === 'post') {
        setExamples(responses['500'], {
          failed: {
            summary: 'The copy could not be made',
            value: { error: 'Backup failed', reason: 'disk_full', message: 'no space left in the backups folder' },
          },
        });
      }
      if (mutating && authenticated) {
        responses['503'] ??= { description: 'A restore is running (or the service is shutting down): retry later' };
        setExamples(responses['503'], { restoring: { summary: 'During a restore', value: { error: RESTORING } } });
        responses['503'].headers = { 'Retry-After': RETRY_AFTER, ...(responses['503'].headers ?? {}) };
      }
    }
  }
  return document;
}
