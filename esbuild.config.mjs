// Bundles the two CLIs (our code and every dependency) into dist/bundle: one file per entry and
// shared lazy chunks for what loads on demand (each driver with its check). Node's module loader
// spends more time resolving and compiling hundreds of small files than the checks take to run;
// the bundle runs a verification about a third faster. tsc still type-checks and emits dist/src, dist/checks for the tests;
// of those, only the declarations of the public entry (dist/src/index.d.ts, check.d.ts) are published.
import { rmSync } from 'node:fs';
import { build } from 'esbuild';

rmSync('dist/bundle', { recursive: true, force: true }); // chunk names change with every build

await build({
  entryPoints: { 'soma-verify': 'src/cli/soma-verify.ts', 'soma-ports': 'src/cli/soma-ports.ts' },
  outdir: 'dist/bundle/cli',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
  // Bundled CommonJS (pg, ioredis, kafkajs) calls require() for Node's own modules.
  banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
});

// The public entry a plugin imports (`import { defineCheck } from 'soma-verify'`).
await build({
  entryPoints: { index: 'src/index.ts' },
  outdir: 'dist/bundle',
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
});
