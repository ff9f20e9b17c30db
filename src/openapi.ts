/**
 * Writes the OpenAPI document to openapi.json at the repository root (or to the path given), or with `--check`
 * compares it with that file and exits 1 when they differ. Run compiled (`npm run openapi`, `npm run openapi:check`)
 * so the Swagger CLI plugin has documented the DTOs exactly as in production.
 *
 * The app is built on a throw-away database in a temporary folder and never listens. The output is deterministic:
 * object keys are sorted, and the configuration is fixed here rather than read from the environment.
 */
import type { OpenAPIObject } from '@nestjs/swagger';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { buildOpenApiDocument, createApp } from './app.setup';
import { loadConfig } from './config/app-config';

export const DEFAULT_OPENAPI_FILE = path.resolve(__dirname, '..', 'openapi.json');

/** A copy of `value` with every object's keys in sorted order; array order is kept (it carries meaning). */
export function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) {
    return value.map(sortKeys);
  }
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((key) => [key, sortKeys((value as Record<string, unknown>)[key])]),
    );
  }
  return value;
}

/** The file's exact text: sorted keys, two-space indent, trailing newline. */
export function serializeOpenApi(document: OpenAPIObject): string {
  return `${JSON.stringify(sortKeys(document), null, 2)}\n`;
}

/** Builds the real app on a temporary database and returns its document. */
export async function generateOpenApiDocument(): Promise<OpenAPIObject> {
  const dir = mkdtempSync(path.join(tmpdir(), 'mc-openapi-'));
  try {
    // Fixed values only: nothing from this machine's environment may reach the document.
    const config = loadConfig({
      MISSION_CONTROL_DB_PATH: path.join(dir, 'mission-control.db'),
      AUTH_USER: 'openapi',
      AUTH_PASS: 'openapi-throwaway-password',
      LOG_LEVEL: 'error',
    });
    const app = await createApp(config);
    app.useLogger(['error']);
    try {
      return buildOpenApiDocument(app);
    } finally {
      await app.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A short human summary of how `actual` differs from `expected` (both serialized documents). */
export function summarizeDifference(expected: string, actual: string): string[] {
  const lines: string[] = [];
  let committed: OpenAPIObject | undefined;
  try {
    committed = JSON.parse(expected) as OpenAPIObject;
  } catch {
    return ['the committed file is not valid JSON'];
  }
  const current = JSON.parse(actual) as OpenAPIObject;
  const compare = (label: string, before: Record<string, unknown>, after: Record<string, unknown>): void => {
    for (const key of Object.keys(after).sort()) {
      if (!(key in before)) {
        lines.push(`  added ${label} ${key}`);
      } else if (JSON.stringify(sortKeys(before[key])) !== JSON.stringify(sortKeys(after[key]))) {
        lines.push(`  changed ${label} ${key}`);
      }
    }
    for (const key of Object.keys(before).sort()) {
      if (!(key in after)) {
        lines.push(`  removed ${label} ${key}`);
      }
    }
  };
  compare('path', committed.paths ?? {}, current.paths ?? {});
  compare('schema', committed.components?.schemas ?? {}, current.components?.schemas ?? {});
  const { paths: _p1, components: _c1, ...restBefore } = committed;
  const { paths: _p2, components: _c2, ...restAfter } = current;
  compare('field', restBefore, restAfter);
  if (lines.length === 0) {
    lines.push('  formatting only (key order or whitespace)');
  }
  const expectedLines = expected.split('\n');
  const actualLines = actual.split('\n');
  const firstDifferent = actualLines.findIndex((line, index) => line !== expectedLines[index]);
  if (firstDifferent >= 0) {
    lines.push(`  first different line: ${firstDifferent + 1}`);
  }
  return lines;
}

async function main(argv: string[]): Promise<number> {
  const check = argv.includes('--check');
  const target = path.resolve(argv.find((arg) => !arg.startsWith('--')) ?? DEFAULT_OPENAPI_FILE);
  const text = serializeOpenApi(await generateOpenApiDocument());
  const shown = path.relative(process.cwd(), target) || target;
  if (!check) {
    writeFileSync(target, text);
    console.log(`Wrote ${shown}`);
    return 0;
  }
  let committed: string;
  try {
    committed = readFileSync(target, 'utf8');
  } catch {
    console.error(`${shown} is missing: run \`npm run openapi\` and commit it`);
    return 1;
  }
  if (committed === text) {
    console.log(`${shown} is up to date`);
    return 0;
  }
  console.error(`${shown} is out of date with the code:`);
  for (const line of summarizeDifference(committed, text)) {
    console.error(line);
  }
  console.error('Run `npm run openapi` and commit openapi.json.');
  return 1;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error('Could not generate the OpenAPI document:', error);
      process.exit(2);
    },
  );
}
