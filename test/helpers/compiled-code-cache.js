'use strict';
/**
 * Preloaded (`node -r`, see compiledNodeArgs in cli-runner.ts) into the compiled service and CLI that the tests
 * start: the same V8 code cache (scripts/compile-cache.js) that `npm start`, `npm run cli` and the package's bin
 * install through scripts/built.js. Without it every spawn parses and compiles some 1,500 modules again; the suite
 * starts the compiled CLI and service well over a hundred times (issue 20 item 8).
 */
require('../../scripts/compile-cache').install(require('node:path').resolve(__dirname, '..', '..'));
