'use strict';
/**
 * `sucrase/register/ts` with a disk cache: what src/common/typescript-entry.ts registers in a worker thread or child
 * process started from the TypeScript sources (under Jest or ts-node; the compiled service never loads this).
 *
 * sucrase keeps nothing between processes, so every such worker loaded sucrase and stripped the types of the same
 * files again: a few hundred ms of CPU per backup, verify, upload or restore job, paid hundreds of times per test
 * run. Here the output is the one sucrase's own hook produces (same transforms, same inline source map), stored
 * under node_modules/.cache/ and keyed by sucrase's version, the options, the file's path and its content, so a
 * changed file simply misses. sucrase itself is loaded only on a miss. Any failure to read or write the cache
 * falls back to transforming in memory.
 */
const crypto = require('node:crypto');
const fs = require('node:fs');
const Module = require('node:module');
const path = require('node:path');
const { cacheDir, writeEntry } = require('./disk-cache');

const SUCRASE_VERSION = require('sucrase/package.json').version;
/** As sucrase/register/ts (registerTS), with SUCRASE_OPTIONS merged in the same way. */
const OPTIONS = {
  transforms: ['imports', 'typescript'],
  ...(process.env.SUCRASE_OPTIONS ? JSON.parse(process.env.SUCRASE_OPTIONS) : {}),
};
const DIR = cacheDir(path.resolve(__dirname, '..'), `sucrase-${SUCRASE_VERSION}`);

function transformWithSucrase(source, filePath) {
  const { code, sourceMap } = require('sucrase').transform(source, {
    ...OPTIONS,
    sourceMapOptions: { compiledFilename: filePath },
    filePath,
  });
  const mapBase64 = Buffer.from(JSON.stringify(sourceMap)).toString('base64');
  return `${code}\n//# sourceMappingURL=data:application/json;charset=utf-8;base64,${mapBase64}`;
}

function transformCached(source, filePath) {
  const key = crypto
    .createHash('sha1')
    .update(JSON.stringify(OPTIONS))
    .update('\0')
    .update(filePath)
    .update('\0')
    .update(source)
    .digest('hex');
  const cacheFile = path.join(DIR, `${key}.js`);
  try {
    return fs.readFileSync(cacheFile, 'utf8');
  } catch {
    // Not cached yet (or unreadable): transform below.
  }
  const code = transformWithSucrase(source, filePath);
  try {
    writeEntry(cacheFile, code);
  } catch {
    // A read-only or full disk: the next worker transforms again, nothing worse.
  }
  return code;
}

Module._extensions['.ts'] = function loadTypeScript(module, filename) {
  module._compile(transformCached(fs.readFileSync(filename, 'utf8'), filename), filename);
};
