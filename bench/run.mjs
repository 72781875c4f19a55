// `npm run bench`: runs every bench/*.bench.mjs in turn. Each prints its own table and ratios.
import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const only = process.argv[2];
let failed = 0;
for (const file of readdirSync(here).filter((f) => f.endsWith('.bench.mjs')).sort()) {
  if (only && !file.includes(only)) continue;
  console.log(`\n# ${file}`);
  const run = spawnSync(process.execPath, [join(here, file)], { stdio: 'inherit', timeout: 300_000 });
  if (run.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
