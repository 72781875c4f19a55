#!/usr/bin/env node
// CommonJS (bin/package.json), so that --help and --version answer before Node starts its ES
// module loader; everything else runs the ES bundle.
const { join } = require('node:path');

const root = join(__dirname, '..');
const quick = require('../dist/bundle/cli/quick-answer.cjs').quickAnswer(process.argv.slice(2), {
  help: join(root, 'dist/help/soma-verify.txt'),
  packageJson: join(root, 'package.json'),
});
if (quick !== undefined) process.stdout.write(quick);
else import('../dist/bundle/cli/soma-verify.js');
