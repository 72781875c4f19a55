#!/usr/bin/env -S node --
// `--` ends Node's own options: Node 20 reads `--env-file` anywhere on its command line, even
// after the script, and would take soma-ports' `--env-file PATH` for its own.
// (CommonJS, like everything in bin/: see bin/package.json; src/cli/launch.ts runs the CLI.)
require('../dist/bundle/cli/launch.cjs').launch(require('node:path').join(__dirname, '..'), 'soma-ports');
