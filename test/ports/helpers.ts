// Shared by the soma-ports tests: a throw-away workspace (cwd with a ports.json that moves every
// project to a free test range, and a private state dir) and a runner for the compiled CLI.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const BIN = join(ROOT, 'bin', 'soma-ports.js');

export interface Workspace {
  cwd: string;
  stateDir: string;
  /** First port of the test ranges: somaagent01 base.., somabrain base+200.., SFM base+400.. */
  base: number;
  ranges: Record<'somaagent01' | 'somabrain' | 'somafractalmemory', [number, number]>;
  cleanup(): Promise<void>;
}

/**
 * A workspace whose plan keeps the real services and preferred offsets but moves the ranges
 * below the ephemeral range (32768 here) to a random 600-port window, so that tests running in
 * parallel, and real projects on the machine, do not meet.
 */
export async function makeWorkspace(options: { sharedRange?: boolean } = {}): Promise<Workspace> {
  const cwd = await mkdtemp(join(tmpdir(), 'soma-ports-cwd-'));
  const stateDir = await mkdtemp(join(tmpdir(), 'soma-ports-state-'));
  const base = 21000 + 200 * Math.floor(Math.random() * 50); // 21000..30800, +600 < 32768
  const at = (i: number): [number, number] => (options.sharedRange ? [base, base + 199] : [base + 200 * i, base + 200 * i + 199]);
  const ranges = { somaagent01: at(0), somabrain: at(1), somafractalmemory: at(2) };
  const plan = { projects: Object.fromEntries(Object.entries(ranges).map(([name, range]) => [name, { range }])) };
  await writeFile(join(cwd, 'ports.json'), JSON.stringify(plan));
  return {
    cwd,
    stateDir,
    base,
    ranges,
    cleanup: async () => {
      await rm(cwd, { recursive: true, force: true });
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * Run `bin/soma-ports.js ...args` as a user's shell does, through its shebang (or, with
 * `viaNode`, as `node bin/soma-ports.js ...args`); a child that does not exit by itself fails
 * the test.
 */
export function runCli(
  args: string[],
  ws: Pick<Workspace, 'cwd' | 'stateDir'>,
  { env = {}, timeoutMs = 20_000, viaNode = false }: { env?: Record<string, string>; timeoutMs?: number; viaNode?: boolean } = {},
): Promise<CliResult> {
  const started = Date.now();
  return new Promise((resolvePromise, reject) => {
    const [command, argv] = viaNode ? [process.execPath, [BIN, ...args]] : [BIN, args];
    const child = spawn(command, argv, {
      cwd: ws.cwd,
      env: { ...process.env, NO_COLOR: '1', SOMA_PORTS_STATE_DIR: ws.stateDir, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`soma-ports ${args.join(' ')} did not exit within ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
}

export interface AssignJson {
  project: string;
  envFile: string;
  ports: Record<string, number>;
  changed: boolean;
  assignments: Array<{ service: string; key: string; old?: string; port: number; reason: string; why: string }>;
}

export function parseAssign(result: CliResult): AssignJson {
  if (result.code !== 0) throw new Error(`soma-ports exited ${result.code}: ${result.stderr}`);
  return JSON.parse(result.stdout) as AssignJson;
}
