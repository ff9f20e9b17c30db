'use strict';
/**
 * Runs a compiled entry point (dist/main.js, dist/cli/main.js) in this very process, building first only when
 * dist/ is missing or older than the sources. Used by `npm start`, `npm run cli` and the package's `bin`.
 *
 * Why in this process: `npm start` runs `exec node scripts/built.js main`, so the process npm (systemd, a container
 * runtime) sends SIGTERM to is node itself, and the service's graceful shutdown handles it. Why a staleness check
 * instead of always building: `nest build` takes 10-20 s; a built checkout starts the CLI in well under a second.
 *
 * Stale means: the build's inputs (every file under src/ but specs, tsconfig*.json, nest-cli.json) are not the ones
 * the last build started from. Each build records a fingerprint of their paths, sizes and modification times taken
 * before it compiles (dist/.sources-stamp), so an edit made while a build runs leaves dist/ stale instead of passing
 * for current; a deleted or renamed source counts too. A dist/ without a stamp (built by `nest build` directly) is
 * judged by time: stale when some input is newer than its oldest entry point. A checkout without the sources (an
 * installed package) runs dist/ as it is.
 */
const { spawnSync } = require('node:child_process');
const { createHash } = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const DIST = path.join(ROOT, 'dist');
const ENTRIES = ['main.js', path.join('cli', 'main.js')];
const INPUTS = ['tsconfig.json', 'tsconfig.build.json', 'nest-cli.json'];
const STAMP = '.sources-stamp';

function mtime(file) {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return null;
  }
}

/** The build's inputs that exist, with their stat (none in an installed package without sources). */
function inputs(root) {
  const found = [];
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
        found.push(full);
      }
    }
  };
  walk(path.join(root, 'src'));
  found.push(...INPUTS.map((file) => path.join(root, file)));
  const stats = [];
  for (const file of found) {
    try {
      const st = fs.statSync(file);
      stats.push({ file: path.relative(root, file), size: st.size, mtimeMs: st.mtimeMs });
    } catch {
      // Not there (an optional input): not part of the build.
    }
  }
  return stats.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
}

/** One line for the whole set of inputs: any edit, deletion or rename changes it. Null without sources. */
function sourceFingerprint(root = ROOT) {
  const stats = inputs(root);
  if (stats.length === 0) {
    return null;
  }
  const hash = createHash('sha256');
  for (const { file, size, mtimeMs } of stats) {
    hash.update(`${file}\0${size}\0${mtimeMs}\n`);
  }
  return hash.digest('hex');
}

/** Why dist/ must be (re)built, or null when it is current. */
function staleReason(root = ROOT) {
  const built = ENTRIES.map((entry) => mtime(path.join(root, 'dist', entry)));
  if (built.some((time) => time === null)) {
    return 'dist/ is missing';
  }
  const stats = inputs(root);
  if (stats.length === 0) {
    return null;
  }
  let stamp = null;
  try {
    stamp = fs.readFileSync(path.join(root, 'dist', STAMP), 'utf8').trim();
  } catch {
    // Built without this script: judged by time below.
  }
  if (stamp !== null) {
    return stamp === sourceFingerprint(root) ? null : 'the sources changed since the last build';
  }
  const newest = Math.max(...stats.map((st) => st.mtimeMs));
  return newest > Math.min(...built) ? 'the sources changed since the last build' : null;
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
  // Taken before compiling: an edit made during the build then no longer matches, and the next run rebuilds.
  const fingerprint = sourceFingerprint();
  // Build output goes to stderr: stdout stays clean for `cli … --json`.
  const result = spawnSync(process.execPath, [nest, 'build'], { cwd: ROOT, stdio: ['ignore', 2, 2] });
  if (result.status !== 0) {
    process.stderr.write(`The build failed (exit ${result.status ?? result.signal})\n`);
    process.exit(1);
  }
  if (fingerprint !== null) {
    fs.writeFileSync(path.join(DIST, STAMP), `${fingerprint}\n`);
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

module.exports = { runBuilt, staleReason, build, sourceFingerprint };

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
