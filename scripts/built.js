'use strict';
/**
 * Runs a compiled entry point (dist/main.js, dist/cli/main.js) in this very process, building first only when
 * dist/ is missing or older than the sources. Used by `npm start`, `npm run cli` and the package's `bin`.
 *
 * Why in this process: `npm start` runs `exec node scripts/built.js main`, so the process npm (systemd, a container
 * runtime) sends SIGTERM to is node itself, and the service's graceful shutdown handles it. Why a staleness check
 * instead of always building: `nest build` takes 10-20 s; a built checkout starts the CLI in well under a second.
 *
 * Stale means: some file under src/ (specs excepted), tsconfig*.json or nest-cli.json is newer than the oldest of
 * the entry points in dist/. A checkout without the sources (an installed package) runs dist/ as it is.
 */
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const DIST = path.join(ROOT, 'dist');
const ENTRIES = ['main.js', path.join('cli', 'main.js')];
const INPUTS = ['tsconfig.json', 'tsconfig.build.json', 'nest-cli.json'];

function mtime(file) {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return null;
  }
}

/** The newest modification time of the build's inputs (0 when there are no sources, as in an installed package). */
function newestSource(root) {
  let newest = 0;
  const walk = (dir) => {
    let entries;
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        walk(full);
      } else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.spec.ts')) {
        newest = Math.max(newest, mtime(full) ?? 0);
      }
    }
  };
  walk(path.join(root, 'src'));
  for (const file of INPUTS) {
    newest = Math.max(newest, mtime(path.join(root, file)) ?? 0);
  }
  return newest;
}

/** Why dist/ must be (re)built, or null when it is current. */
function staleReason(root = ROOT) {
  const built = ENTRIES.map((entry) => mtime(path.join(root, 'dist', entry)));
  if (built.some((time) => time === null)) {
    return 'dist/ is missing';
  }
  return newestSource(root) > Math.min(...built) ? 'the sources changed since the last build' : null;
}

function build(reason) {
  const nest = path.join(ROOT, 'node_modules', '@nestjs', 'cli', 'bin', 'nest.js');
  if (!fs.existsSync(nest)) {
    if (reason === 'dist/ is missing') {
      process.stderr.write('dist/ is missing and @nestjs/cli is not installed: run `npm ci && npm run build`\n');
      process.exit(1);
    }
    process.stderr.write(`Note: ${reason}, but @nestjs/cli is not installed to rebuild; running dist/ as it is\n`);
    return;
  }
  process.stderr.write(`Building (${reason}) …\n`);
  // Build output goes to stderr: stdout stays clean for `cli … --json`.
  const result = spawnSync(process.execPath, [nest, 'build'], { cwd: ROOT, stdio: ['ignore', 2, 2] });
  if (result.status !== 0) {
    process.stderr.write(`The build failed (exit ${result.status ?? result.signal})\n`);
    process.exit(1);
  }
}

function runBuilt(entry) {
  const reason = staleReason();
  if (reason !== null) {
    build(reason);
  }
  if (process.env.MC_COMPILE_CACHE !== 'off') {
    require('./compile-cache').install(ROOT);
  }
  require(path.join(DIST, entry));
}

module.exports = { runBuilt, staleReason, build };

if (require.main === module) {
  const entry = process.argv[2];
  if (entry !== 'main' && entry !== 'cli') {
    process.stderr.write('usage: node scripts/built.js main|cli [args…]\n');
    process.exit(2);
  }
  // The entry point reads its own arguments from process.argv: drop this script's `main|cli` word.
  process.argv.splice(2, 1);
  runBuilt(entry === 'main' ? 'main.js' : path.join('cli', 'main.js'));
}
