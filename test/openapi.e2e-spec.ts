import { ROUTE_ARGS_METADATA } from '@nestjs/common/constants';
import { RouteParamtypes } from '@nestjs/common/enums/route-paramtypes.enum';
import { ModulesContainer } from '@nestjs/core';
import request from 'supertest';
import { createUser, startTestApp, type TestApp } from './helpers/test-app';

/**
 * Every operation Swagger UI shows must be usable from the page alone: a summary, its request body with a schema
 * and an example, its success response with a schema and examples, and every error it can answer: 401/403 on
 * protected routes and 429 on rate-limited ones. What is "protected", "rate-limited" and "takes a body" comes from
 * the running app (live requests and Nest's route metadata), not from the document, so a route that forgot its
 * decorators cannot pass by also forgetting its documentation.
 */

interface Schema {
  $ref?: string;
  type?: string;
  example?: unknown;
  examples?: unknown;
  enum?: unknown[];
  items?: Schema;
  properties?: Record<string, Schema>;
  allOf?: Schema[];
  oneOf?: Schema[];
  anyOf?: Schema[];
}

interface MediaType {
  schema?: Schema;
  example?: unknown;
  examples?: unknown;
}

interface Operation {
  operationId?: string;
  summary?: string;
  security?: Record<string, string[]>[];
  requestBody?: { content?: Record<string, MediaType> };
  responses: Record<string, { description?: string; content?: Record<string, MediaType> }>;
}

interface OpenApi {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Schema> };
}

const MUTATING = new Set(['post', 'put', 'patch', 'delete']);
const JSON_TYPE = 'application/json';

describe('OpenAPI document: every operation is complete (e2e)', () => {
  let t: TestApp;
  let doc: OpenApi;
  let viewerCookie: string;
  const operations: { method: string; path: string; op: Operation; route: string }[] = [];

  beforeAll(async () => {
    t = await startTestApp();
    doc = (await request(t.http).get('/api/docs-json').expect(200)).body as OpenApi;
    for (const [path, methods] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(methods)) {
        operations.push({ method, path, op, route: `${method.toUpperCase()} ${path}` });
      }
    }
    viewerCookie = (await createUser(t.http, 'openapi-viewer', 'viewer')).cookie;
  });

  afterAll(async () => {
    await t.close();
  });

  function resolve(schema: Schema | undefined): Schema | undefined {
    if (schema?.$ref === undefined) {
      return schema;
    }
    return doc.components.schemas[schema.$ref.replace('#/components/schemas/', '')];
  }

  /** Where, inside `schema`, a value has no example (a leaf without `example`/`enum`, or an empty object). */
  function missingExamples(schema: Schema | undefined, where: string, seen = new Set<Schema>()): string[] {
    const resolved = resolve(schema);
    if (resolved === undefined) {
      return [`${where} (no schema)`];
    }
    if (resolved.example !== undefined || resolved.examples !== undefined || resolved.enum !== undefined) {
      return [];
    }
    if (seen.has(resolved)) {
      return [];
    }
    const next = new Set(seen).add(resolved);
    const name = schema?.$ref?.split('/').pop() ?? where;
    const parts = resolved.allOf ?? resolved.oneOf ?? resolved.anyOf;
    if (parts !== undefined) {
      return parts.flatMap((part) => missingExamples(part, where, next));
    }
    if (resolved.type === 'array') {
      return missingExamples(resolved.items, `${where}[]`, next);
    }
    if (resolved.properties !== undefined && Object.keys(resolved.properties).length > 0) {
      return Object.entries(resolved.properties).flatMap(([key, property]) =>
        missingExamples(property, `${name}.${key}`, next),
      );
    }
    return [where];
  }

  /** Operation ids (Controller_method) of handlers with a named @Throttle, and of those that take a @Body(). */
  function routeMetadata(): { throttled: Set<string>; withBody: Set<string> } {
    const throttled = new Set<string>();
    const withBody = new Set<string>();
    for (const module of t.app.get(ModulesContainer).values()) {
      for (const wrapper of module.controllers.values()) {
        const type = wrapper.metatype as { name: string; prototype: Record<string, unknown> } | null;
        if (!type) {
          continue;
        }
        const classThrottled = Reflect.getMetadataKeys(type).some(isThrottleKey);
        for (const method of Object.getOwnPropertyNames(type.prototype)) {
          const handler = type.prototype[method];
          if (method === 'constructor' || typeof handler !== 'function') {
            continue;
          }
          const id = `${type.name}_${method}`;
          if (classThrottled || Reflect.getMetadataKeys(handler).some(isThrottleKey)) {
            throttled.add(id);
          }
          const args = (Reflect.getMetadata(ROUTE_ARGS_METADATA, type, method) ?? {}) as Record<string, unknown>;
          if (Object.keys(args).some((key) => key.startsWith(`${RouteParamtypes.BODY}:`))) {
            withBody.add(id);
          }
        }
      }
    }
    return { throttled, withBody };
  }

  function livePath(path: string): string {
    return path.replace(/\{[^}]+\}/g, '1');
  }

  it('should describe every operation completely', async () => {
    const { throttled, withBody } = routeMetadata();
    // The introspection itself works: the routes named in the contract are found.
    expect([...throttled]).toEqual(
      expect.arrayContaining(['BackupsController_create', 'BackupsController_remove', 'SchedulerController_trigger']),
    );
    expect([...withBody]).toEqual(expect.arrayContaining(['AuthController_login', 'SettingsController_update']));

    const problems: string[] = [];
    const seenIds = new Set<string>();
    for (const { method, path, op, route } of operations) {
      const id = op.operationId ?? route;
      seenIds.add(id);
      const codes = Object.keys(op.responses);
      if (typeof op.summary !== 'string' || op.summary.trim() === '') {
        problems.push(`${route}: no summary`);
      }

      // Authentication, from a live request without credentials.
      const anonymous = await request(t.http)[method as 'get'](livePath(path));
      const isProtected = anonymous.status === 401;
      if (isProtected) {
        if ((op.security ?? []).length === 0) {
          problems.push(`${route}: answers 401 but declares no security scheme (Swagger UI would not send the key)`);
        }
        if (!codes.includes('401')) {
          problems.push(`${route}: no 401 response`);
        }
        // 403: a role below the route's (seen live for reads), or the CSRF check on every cookie-authenticated change.
        let forbiddable = MUTATING.has(method);
        if (!forbiddable) {
          const asViewer = await request(t.http)[method as 'get'](livePath(path)).set('Cookie', viewerCookie);
          forbiddable = asViewer.status === 403;
        }
        if (forbiddable && !codes.includes('403')) {
          problems.push(`${route}: no 403 response`);
        }
      }

      if (throttled.has(id) && !codes.includes('429')) {
        problems.push(`${route}: rate-limited but no 429 response`);
      }

      // Request body: present when the handler takes one, with a schema and an example.
      if (withBody.has(id) && op.requestBody === undefined) {
        problems.push(`${route}: takes a body but documents none`);
      }
      for (const [type, media] of Object.entries(op.requestBody?.content ?? {})) {
        if (media.schema === undefined) {
          problems.push(`${route}: request body ${type} has no schema`);
        } else if (type === JSON_TYPE && media.example === undefined && media.examples === undefined) {
          for (const where of missingExamples(media.schema, 'body')) {
            problems.push(`${route}: request body has no example at ${where}`);
          }
        }
      }

      // Responses: a success with a schema and examples; every error with a schema.
      const successes = codes.filter((code) => code.startsWith('2'));
      if (successes.length === 0) {
        problems.push(`${route}: no success response`);
      }
      for (const code of codes) {
        const response = op.responses[code];
        const content = Object.entries(response.content ?? {});
        if (content.length === 0 || content.some(([, media]) => media.schema === undefined)) {
          problems.push(`${route}: response ${code} has no schema`);
          continue;
        }
        if (code.startsWith('2')) {
          for (const [type, media] of content) {
            if (type === JSON_TYPE && media.example === undefined && media.examples === undefined) {
              for (const where of missingExamples(media.schema, `response ${code}`)) {
                problems.push(`${route}: response ${code} has no example at ${where}`);
              }
            }
          }
        }
      }
    }

    // Every throttled handler is in the document at all.
    for (const id of throttled) {
      if (!seenIds.has(id)) {
        problems.push(`${id}: rate-limited but missing from the document`);
      }
    }
    expect(problems).toEqual([]);
  });
});

function isThrottleKey(key: unknown): boolean {
  return typeof key === 'string' && key.startsWith('THROTTLER:LIMIT');
}
