// writeFileAtomic under SIGKILL: a writer killed at random moments never leaves a partial file.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from './helpers.js';

const WRITER = join(ROOT, 'test', 'ports', 'fixtures', 'atomic-writer.mjs');
const SIZE = 2_000_000; // large enough that a non-atomic write would often be caught half done
const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

/** The content the writer produces for generation n (mirror of fixtures/atomic-writer.mjs). */
const content = (n: number) => `# gen ${n}\n` + `FILL_${n % 10}=${String(n % 10).repeat(SIZE)}\n` + `# end ${n}\n`;

describe('writeFileAtomic', () => {
  it('a process killed in the middle of a write never leaves a partial .env', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'soma-ports-atomic-'));
    dirs.push(dir);
    const file = join(dir, '.env');
    const original = 'ORIGINAL=1\n';
    await writeFile(file, original);
    let sawNewContent = 0;
    for (let round = 0; round < 12; round++) {
      const child = spawn(process.execPath, [WRITER, file, String(SIZE)], { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
      await sleep(5 + Math.random() * 120);
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('exit', resolve));

      const text = await readFile(file, 'utf8');
      if (text === original) continue;
      const gen = Number(/^# gen (\d+)\n/.exec(text)?.[1]);
      expect(Number.isInteger(gen), `round ${round}: file starts with a generation header`).toBe(true);
      expect(text === content(gen), `round ${round}: file is the complete generation ${gen}`).toBe(true);
      sawNewContent++;
    }
    // The kills must have landed while writes were happening, not only before the first one.
    expect(sawNewContent).toBeGreaterThan(0);
  });
});
