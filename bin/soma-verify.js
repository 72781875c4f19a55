#!/usr/bin/env node
// CommonJS (bin/package.json): --help and --version answer before anything else loads, and the
// CLI runs from one file with a V8 code cache (src/cli/launch.ts).
require('../dist/bundle/cli/launch.cjs').launch(require('node:path').join(__dirname, '..'));
