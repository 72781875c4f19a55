// The package as a user gets it: `npm pack`, installed from the tarball into an empty project
// (offline, from npm's cache), then used the two ways it is meant to be: a plugin that imports
// `defineCheck` from 'soma-verify' (run by the installed soma-verify), and both bins.
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../support/cli.js';

const run = promisify(execFile);
let dir: string;
let files: string[];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'soma-verify-pack-'));
  // The build is fresh (vitest's global setup); packing must not build again.
  const { stdout } = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dir], { cwd: ROOT });
  const [packed] = JSON.parse(stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  files = packed!.files.map((f) => f.path);
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'plugin-user', private: true, type: 'module' }));
  await run('npm', ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', join(dir, packed!.filename)], { cwd: dir });
}, 180_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the packed package', () => {
  it('publishes the bundle and the public declarations, not the compiled tree', () => {
    expect(files).toContain('dist/bundle/index.js');
    expect(files).toContain('dist/bundle/cli/launch.cjs');
    expect(files.filter((f) => /^dist\/bundle\/cli\/soma-verify-\w+\.cjs$/.test(f))).toHaveLength(1);
    expect(files).toContain('dist/src/index.d.ts');
    // Its own licence, and those of the packages bundled into it (minifying drops their headers).
    expect(files).toContain('LICENSE');
    expect(files).toContain('dist/bundle/THIRD-PARTY-LICENSES.txt');
    expect(files.filter((f) => f.startsWith('dist/checks/') || (f.startsWith('dist/src/') && !f.endsWith('.d.ts')))).toEqual([]);
  });

  it('has only ASCII in the files a run loads (one other character makes V8 hold a whole file as two-byte text)', async () => {
    const loaded = files.filter((f) => f.startsWith('dist/bundle/') && f.endsWith('.cjs'));
    expect(loaded.length).toBeGreaterThan(5);
    for (const f of loaded) expect((await readFile(join(ROOT, f))).every((byte) => byte < 0x80), f).toBe(true);
  });

  it('imports defineCheck from "soma-verify", with its types', async () => {
    await writeFile(join(dir, 'probe.mjs'), "import { defineCheck } from 'soma-verify';\nconsole.log(typeof defineCheck);\n");
    const { stdout } = await run(process.execPath, ['probe.mjs'], { cwd: dir });
    expect(stdout.trim()).toBe('function');
    const types = await readdir(join(dir, 'node_modules/soma-verify/dist/src'));
    expect(types.sort()).toEqual(['check.d.ts', 'index.d.ts']);
    // TypeScript finds the declarations through `exports` and checks a plugin against them.
    await writeFile(
      join(dir, 'plugin.ts'),
      [
        "import { defineCheck, type CheckContext, type CheckOutcome } from 'soma-verify';",
        "const schema = { '~standard': { version: 1 as const, vendor: 'x', validate: (v: unknown) => ({ value: v as { n: number } }) } };",
        "export default defineCheck({ kind: 'n', options: schema, target: (o) => String(o.n), run: async (o, ctx: CheckContext): Promise<CheckOutcome> => ({ status: ctx.signal.aborted ? 'fail' : 'pass', message: String(o.n) }) });",
        "// @ts-expect-error: a status outside the contract is refused",
        "export const bad: CheckOutcome = { status: 'failed', message: 'x' };",
      ].join('\n'),
    );
    await writeFile(
      join(dir, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { noEmit: true, strict: true, module: 'nodenext', moduleResolution: 'nodenext', types: [] }, files: ['plugin.ts'] }),
    );
    const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
    const checked = await run(process.execPath, [tsc, '-p', '.'], { cwd: dir }).catch((err: { stdout: string }) => err);
    expect('stdout' in checked ? checked.stdout : '').toBe('');
  });

  it('runs both bins: --help, and soma-verify with a plugin check that imports the package', async () => {
    const bin = (name: string) => join(dir, 'node_modules/.bin', name);
    expect((await run(bin('soma-verify'), ['--help'], { cwd: dir })).stdout).toMatch(/soma-verify \[env\]/);
    expect((await run(bin('soma-ports'), ['--help'], { cwd: dir })).stdout).toMatch(/soma-ports/);

    await writeFile(
      join(dir, 'answer.mjs'),
      [
        "import { defineCheck } from 'soma-verify';",
        '// A Standard Schema by hand: the plugin needs no validation library.',
        'const options = { "~standard": { version: 1, vendor: "test", validate: (v) => (typeof v?.answer === "number" ? { value: v } : { issues: [{ message: "answer must be a number" }] }) } };',
        "export default defineCheck({ kind: 'answer', options, target: (o) => `answer ${o.answer}`, async run(o) {",
        "  return o.answer === 42 ? { status: 'pass', message: 'the answer' } : { status: 'fail', message: `${o.answer} is not the answer` };",
        '} });',
      ].join('\n'),
    );
    await writeFile(
      join(dir, 'soma-verify.config.json'),
      JSON.stringify({
        plugins: ['./answer.mjs'],
        environments: { ci: { checks: [{ id: 'good', kind: 'answer', answer: 42 }, { id: 'bad', kind: 'answer', answer: 41 }] } },
      }),
    );
    const failed = await run(bin('soma-verify'), ['ci', '--format', 'json'], { cwd: dir }).catch((err: { code: number; stdout: string }) => err);
    expect('code' in failed && failed.code).toBe(1);
    const report = JSON.parse(failed.stdout) as { checks: Array<{ id: string; status: string; message: string }> };
    expect(report.checks.map((c) => [c.id, c.status, c.message])).toEqual([
      ['good', 'pass', 'the answer'],
      ['bad', 'fail', '41 is not the answer'],
    ]);
  });
});
