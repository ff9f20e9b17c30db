'use strict';
/**
 * Jest's runtime plus a V8 code cache for the modules a test file loads.
 *
 * Every test file gets a fresh module registry, so each one compiles the app's ~1,500 modules (Nest, TypeORM, the
 * AWS SDK …) again from source, a good third of what an e2e file costs before its first test runs. Here a module's
 * code is compiled with the bytecode V8 produced for the same code before (same file, same transformed source, same
 * V8 and flags), kept in memory for the worker's next files and on disk for the next run, as scripts/compile-cache.js
 * does for the compiled service. Only compiling is skipped: every module still runs in the test file's own context,
 * and code whose cache V8 rejects is simply compiled again. It replaces the compile step of Jest's module executor
 * (not a public interface): when a Jest upgrade no longer has one, the runtime is Jest's own.
 */
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const Runtime = require('jest-runtime').default;
const { cacheDir, writeEntry } = require('../scripts/disk-cache');

const DIR = cacheDir(path.resolve(__dirname, '..'), `jest-v8-${process.versions.v8}`);
/** Bytecode by key, for the next test files of this worker (the disk copy is read once). */
const memory = new Map();
/** Produced in this worker and not on disk yet: written when the worker exits. */
const pending = new Map();

function keyOf(filename, source, params) {
  return crypto
    .createHash('sha1')
    .update(filename)
    .update('\0')
    .update(params.join(','))
    .update('\0')
    .update(source)
    .digest('hex');
}

function cachedDataFor(key) {
  let data = memory.get(key);
  if (data === undefined) {
    try {
      data = fs.readFileSync(path.join(DIR, `${key}.bin`));
    } catch {
      data = null;
    }
    memory.set(key, data);
  }
  return data ?? undefined;
}

process.once('exit', () => {
  if (pending.size === 0) {
    return;
  }
  try {
    for (const [key, data] of pending) {
      writeEntry(path.join(DIR, `${key}.bin`), data);
    }
  } catch {
    // A read-only or full disk: the next run compiles again, nothing worse.
  }
});

class CodeCachingRuntime extends Runtime {
  constructor(...args) {
    super(...args);
    const executor = this.executor;
    const environment = this._environment;
    if (executor === undefined || typeof executor.compile !== 'function' || environment === undefined) {
      return; // Another Jest version: run as Jest does.
    }
    executor.compile = function compileWithCache(scriptSource, filename) {
      const vmContext = environment.getVmContext();
      // Core modules get Jest's own file name, and code that may use import() Jest's own checks: left to Jest.
      if (vmContext == null || this.resolution.isCoreModule(filename) || scriptSource.includes('import(')) {
        return Object.getPrototypeOf(this).compile.call(this, scriptSource, filename);
      }
      const params = this.injectedModuleParameters;
      const key = keyOf(filename, scriptSource, params);
      const cachedData = cachedDataFor(key);
      let fn;
      try {
        fn = vm.compileFunction(scriptSource, params, {
          filename,
          parsingContext: vmContext,
          cachedData,
          produceCachedData: cachedData === undefined,
        });
      } catch {
        // A syntax error or anything unusual: let Jest compile it and report as it does.
        return Object.getPrototypeOf(this).compile.call(this, scriptSource, filename);
      }
      if (cachedData === undefined && fn.cachedDataProduced) {
        memory.set(key, fn.cachedData);
        pending.set(key, fn.cachedData);
      } else if (fn.cachedDataRejected) {
        memory.set(key, null);
      }
      return fn;
    };
  }
}

module.exports = CodeCachingRuntime;
