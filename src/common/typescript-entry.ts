import * as path from 'node:path';

/**
 * The `eval` source that starts a worker thread or child process on a TypeScript entry file. Used only when the
 * service itself runs from TypeScript (under ts-jest or ts-node); the compiled service starts the `.js` siblings
 * directly and never gets here.
 *
 * Why sucrase and not ts-node: every backup, verify, upload, restore and health probe starts a fresh worker or
 * child, and ts-node must first load the TypeScript compiler in each (a large share of a short job's CPU), where sucrase
 * only strips the types. The entry files it loads use no decorators, enums or namespaces, which sucrase does not
 * compile as tsc does. It is registered explicitly, so the result does not depend on the working directory.
 * scripts/ts-entry-register.js is sucrase's own hook plus a disk cache of its output, so the workers of one test run
 * do not strip the types of the same files again and again.
 */
export function typeScriptEntrySource(entry: string, preload: string[] = []): string {
  const register = path.join(__dirname, '..', '..', 'scripts', 'ts-entry-register.js');
  return [register, ...preload, entry].map((file) => `require(${JSON.stringify(file)});`).join('');
}
