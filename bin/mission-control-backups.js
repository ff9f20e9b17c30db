#!/usr/bin/env node
'use strict';
// The package's `bin`: the compiled CLI, rebuilt first only when dist/ is missing or stale (see scripts/built.js).
require('../scripts/built.js').runBuilt(require('node:path').join('cli', 'main.js'));
