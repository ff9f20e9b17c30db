'use strict';
/**
 * A V8 code cache for CommonJS modules (what `module.enableCompileCache()` does from Node 22; this project runs on
 * Node 20). Loading the compiled CLI is ~0.5 s of parsing and compiling some 1,500 files of Nest, TypeORM and
 * friends; with the cached bytecode most of that is skipped, which is what brings `backups list` under 1 s.
 *
 * The cache lives in node_modules/.cache/mission-control-backups/ (one file per module, keyed by its path and
 * content hash, so a changed file simply misses). Any failure to read or write it (a read-only tree under
 * systemd's ProtectSystem=strict, a full disk) silently falls back to Node's normal loading.
 */
const crypto = require('node:crypto');
const fs = require('node:fs');
const Module = require('node:module');
const path = require('node:path');
const vm = require('node:vm');
const { cacheDir, writeEntry } = require('./disk-cache');

function install(root) {
  const dir = cacheDir(root, `v8-${process.versions.v8}`);
  const originalCompile = Module.prototype._compile;
  const pending = [];

  Module.prototype._compile = function compileWithCache(content, filename) {
    // A module that may use import() is left to Node: a vm.Script has no loader for dynamic imports.
    if (!filename.endsWith('.js') || content.includes('import(')) {
      return originalCompile.call(this, content, filename);
    }
    const source = Module.wrap(content.startsWith('#!') ? `//${content}` : content);
    const key = crypto.createHash('sha1').update(filename).update('\0').update(source).digest('hex');
    const cacheFile = path.join(dir, `${key}.bin`);
    let cachedData;
    try {
      cachedData = fs.readFileSync(cacheFile);
    } catch {
      cachedData = undefined;
    }
    let script;
    try {
      script = new vm.Script(source, { filename, cachedData });
    } catch {
      return originalCompile.call(this, content, filename);
    }
    if (cachedData === undefined || script.cachedDataRejected) {
      pending.push({ script, cacheFile });
    }
    const fn = script.runInThisContext({ displayErrors: true });
    const mod = this;
    const require = (id) => mod.require(id);
    require.resolve = (request, options) => Module._resolveFilename(request, mod, false, options);
    require.resolve.paths = (request) => Module._resolveLookupPaths(request, mod);
    require.main = process.mainModule;
    require.extensions = Module._extensions;
    require.cache = Module._cache;
    return fn.call(mod.exports, mod.exports, require, mod, filename, path.dirname(filename));
  };

  // Written once the program has loaded (the bytecode then includes the functions that ran), never on the way.
  process.once('exit', () => {
    if (pending.length === 0) {
      return;
    }
    try {
      for (const { script, cacheFile } of pending) {
        writeEntry(cacheFile, script.createCachedData());
      }
    } catch {
      // A read-only or full disk: the next run compiles again, nothing worse.
    }
  });
}

module.exports = { install };
