'use strict';
/**
 * Jest's TypeScript transform: ts-jest in two modes.
 *
 * The Swagger CLI plugin rewrites only DTOs, entities and controllers (the file suffixes in nest-cli.json), and it
 * needs a type checker, so those files are compiled by ts-jest with a whole TypeScript program, exactly as before and
 * as `nest build` does. Every other file is transpiled one at a time (ts-jest with isolatedModules): it needs no
 * types, and `npm run check` type-checks the tree separately.
 *
 * Why: ts-jest in program mode builds the program of the whole tree in each Jest worker before it can even compute a
 * cache key, on every run, cache or no cache. Here the cache key of a typed file is computed without it (the file, and
 * the size and time of every source and of the lock file, since the plugin's output depends on the types it imports),
 * so the program is built only when some typed file actually has to be compiled again.
 */
const { createHash } = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { isFilenameMatched } = require('@nestjs/swagger/dist/plugin/utils/is-filename-matched.util');

const ROOT = path.resolve(__dirname, '..');
const swaggerPlugin = { path: path.join(__dirname, 'swagger-plugin.transformer.js') };
const pluginOptions = require('../nest-cli.json').compilerOptions.plugins.find(
  (p) => p.name === '@nestjs/swagger',
).options;
/**
 * The files the plugin rewrites, with its defaults where nest-cli.json sets nothing (read here rather than through
 * the plugin's mergePluginOptions, which loads @nestjs/common into every worker).
 */
const TYPED_SUFFIXES = [
  ...(pluginOptions.dtoFileNameSuffix ?? ['.dto.ts', '.entity.ts']),
  ...(pluginOptions.controllerFileNameSuffix ?? ['.controller.ts']),
];

function needsTypes(file) {
  return isFilenameMatched(TYPED_SUFFIXES, file);
}

/** What the transform itself is: a change to any of these (the compiler's version too) invalidates every cached file. */
const IDENTITY = createHash('sha1')
  .update(fs.readFileSync(__filename))
  .update(fs.readFileSync(swaggerPlugin.path))
  .update(fs.readFileSync(path.join(ROOT, 'tsconfig.json')))
  .update(JSON.stringify(pluginOptions))
  .update(
    ['ts-jest', 'typescript', '@nestjs/swagger']
      .map((name) => `${name}@${require(`${name}/package.json`).version}`)
      .join(),
  )
  .digest('hex');

/**
 * Path, size and time of everything a typed file's output may depend on (what it imports, the libraries' types).
 * A test file asks for the keys of all ~30 typed files at once, each a walk of the whole tree: one walk serves the
 * burst (a source edited meanwhile belongs to the next run anyway).
 */
const STAMP_TTL_MS = 2000;
let lastStamp = { at: -Infinity, value: '' };
function typeInputsStamp() {
  const now = performance.now();
  if (now - lastStamp.at > STAMP_TTL_MS) {
    lastStamp = { at: now, value: walkTypeInputs() };
  }
  return lastStamp.value;
}

function walkTypeInputs() {
  const files = [path.join(ROOT, 'package-lock.json')];
  const walk = (dir) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        walk(full);
      } else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.spec.ts')) {
        files.push(full);
      }
    }
  };
  walk(path.join(ROOT, 'src'));
  const hash = createHash('sha1');
  for (const file of files) {
    const st = fs.statSync(file);
    hash.update(`${file}\0${st.size}\0${st.mtimeMs}\0`);
  }
  return hash.digest('hex');
}

/**
 * ts-jest keeps its compiler per Jest project config in a static list, so two ts-jest transformers with different
 * options in one project would share the first one's compiler. Each mode gets a config of its own (one marker in
 * `globals`, which only ts-jest reads here), kept per original so that ts-jest finds it again by identity.
 */
function configFor(mode) {
  const copies = new WeakMap();
  return (config) => {
    let copy = copies.get(config);
    if (copy === undefined) {
      copy = { ...config, globals: { ...config.globals, mcTsTransformMode: mode } };
      copies.set(config, copy);
    }
    return copy;
  };
}

const TS_JEST_OPTIONS = {
  isolated: { diagnostics: false, tsconfig: { isolatedModules: true } },
  typed: { diagnostics: false, astTransformers: { before: [swaggerPlugin] } },
};

/** ts-jest (and with it TypeScript) is loaded only when a file has to be compiled: a warm cache needs neither. */
class TsTransform {
  constructor() {
    this.transformers = {};
    this.configs = { isolated: configFor('isolated'), typed: configFor('typed') };
  }

  getCacheKey(source, file, options) {
    const typed = needsTypes(file);
    return createHash('sha1')
      .update(IDENTITY)
      .update(`\0${typed ? `typed\0${typeInputsStamp()}` : 'isolated'}\0${file}\0`)
      .update(`${options.instrument ? 1 : 0}${options.supportsStaticESM ? 1 : 0}\0`)
      .update(source)
      .digest('hex');
  }

  process(source, file, options) {
    const mode = needsTypes(file) ? 'typed' : 'isolated';
    this.transformers[mode] ??= new (require('ts-jest').TsJestTransformer)(TS_JEST_OPTIONS[mode]);
    return this.transformers[mode].process(source, file, { ...options, config: this.configs[mode](options.config) });
  }
}

module.exports = { createTransformer: () => new TsTransform() };
