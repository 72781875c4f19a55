// vitest global setup: the tests that run dist/ (the CLI, the compiled check kinds, the packed
// package) must never run against a stale build. Builds when any source is newer than the last
// build's final output, so `npm test` (which has just built) does not build twice.
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './cli.js';

const SOURCES = ['src', 'checks', 'scenarios', 'package.json', 'esbuild.config.mjs', 'tsconfig.json', 'tsconfig.build.json'];
// Written last by `npm run build` (esbuild.config.mjs).
const LAST_OUTPUT = 'dist/bundle/index.js';

function newestMtime(path: string): number {
  let stat;
  try {
    stat = statSync(path);
  } catch {
    return 0;
  }
  if (!stat.isDirectory()) return stat.mtimeMs;
  return Math.max(stat.mtimeMs, ...readdirSync(path).map((name) => newestMtime(join(path, name))));
}

export default function setup(): void {
  const built = newestMtime(join(ROOT, LAST_OUTPUT));
  const changed = Math.max(...SOURCES.map((p) => newestMtime(join(ROOT, p))));
  if (built > changed) return;
  execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
}
