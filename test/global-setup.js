'use strict';
/**
 * Runs once before the e2e project: makes dist/ current exactly as `npm start` and `npm run cli` do
 * (scripts/built.js), so every suite that runs the compiled service or CLI shares one build instead of compiling
 * the tree itself, and no two parallel suites ever build dist/ at the same time. On a fresh clone this is the
 * real build the operator's first `npm start` would make.
 */
const { staleReason, build } = require('../scripts/built.js');

module.exports = async function globalSetup() {
  const reason = staleReason();
  if (reason !== null) {
    build(reason);
  }
  const stillStale = staleReason();
  if (stillStale !== null) {
    throw new Error(`dist/ is still stale after building: ${stillStale}`);
  }
};
