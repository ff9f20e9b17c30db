'use strict';
/**
 * Where this project's caches live (node_modules/.cache/mission-control-backups/<name>: the launchers' V8 code cache,
 * and in tests Jest's code cache and sucrase's output), and how an entry is written.
 */
const fs = require('node:fs');
const path = require('node:path');
const { threadId } = require('node:worker_threads');

function cacheDir(root, name) {
  return path.join(root, 'node_modules', '.cache', 'mission-control-backups', name);
}

/** Processes and threads running at once may write the same entry: each writes its own temp name, then renames. */
function writeEntry(file, data) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const temp = `${file}.${process.pid}.${threadId}.tmp`;
  fs.writeFileSync(temp, data);
  fs.renameSync(temp, file);
}

module.exports = { cacheDir, writeEntry };
