// Runs the compiled CLI (bin/soma-verify.js -> dist/) as a child process, the way a user or a CI
// job does, and returns what they would see. The child must exit by itself within its budget:
// one that overruns is killed and the test fails, which proves "no hang, no open handle".
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(fileURLToPath(import.meta.url), '../../..');
export const BIN = join(ROOT, 'bin/soma-verify.js');

export interface CliResult {
  /** Exit code; null only if the child died of a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON, when it is JSON. */
  json: unknown;
  /** Spawn to exit, start-up included. */
  wallMs: number;
}

export interface CliOptions {
  cwd: string;
  /**
   * Variables on top of a minimal base (PATH, HOME, NO_COLOR unset): the developer's own
   * environment (a SOMA_API_TOKEN, say) must not leak into a test.
   */
  env?: Record<string, string | undefined>;
  /** The child must exit within this; it is killed (and the run rejected) after it. */
  timeoutMs?: number;
}

export interface RunningCli {
  child: ChildProcess;
  /** Resolves when the child exits; rejects if it overran `timeoutMs` and had to be killed. */
  done: Promise<CliResult>;
  /** Resolves once stderr contains `pattern` (progress lines), to time a signal. */
  stderrMatches(pattern: RegExp): Promise<void>;
}

export function startCli(args: string[], { cwd, env = {}, timeoutMs = 20_000 }: CliOptions): RunningCli {
  const base: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' };
  const childEnv: Record<string, string> = { ...base };
  for (const [k, v] of Object.entries(env)) if (v !== undefined) childEnv[k] = v;
  const started = performance.now();
  const child = spawn(process.execPath, [BIN, ...args], { cwd, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const watchers: Array<{ pattern: RegExp; resolve: () => void }> = [];
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
    for (const w of watchers.splice(0)) {
      if (w.pattern.test(stderr)) w.resolve();
      else watchers.push(w);
    }
  });
  const done = new Promise<CliResult>((resolveRun, reject) => {
    const killer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`soma-verify ${args.join(' ')} did not exit within ${timeoutMs} ms (hang or open handle)\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(killer);
      reject(err);
    });
    // 'close', not 'exit': the pipes are drained by then, so stdout is complete.
    child.on('close', (code, signal) => {
      clearTimeout(killer);
      let parsed: unknown;
      try {
        parsed = JSON.parse(stdout);
      } catch {
        parsed = undefined;
      }
      resolveRun({ code, signal, stdout, stderr, json: parsed, wallMs: performance.now() - started });
    });
  });
  return {
    child,
    done,
    stderrMatches: (pattern) =>
      pattern.test(stderr) ? Promise.resolve() : new Promise((resolveMatch) => watchers.push({ pattern, resolve: resolveMatch })),
  };
}

export function runCli(args: string[], options: CliOptions): Promise<CliResult> {
  return startCli(args, options).done;
}

/** The JSON report's shape (README, "JSON report"), as the tests read it. */
export interface JsonReport {
  schemaVersion: number;
  env: string;
  status: 'pass' | 'warn' | 'fail';
  startedAt: string;
  durationMs: number;
  checks: Array<{
    id: string;
    kind: string;
    service?: string;
    target: string;
    status: 'pass' | 'warn' | 'fail' | 'skip';
    durationMs: number;
    message: string;
    details: Record<string, unknown>;
  }>;
  summary: Record<'pass' | 'warn' | 'fail' | 'skip', number>;
}

/** The report of a `--format json` run; throws with the output when stdout is not one. */
export function reportOf(result: CliResult): JsonReport {
  const report = result.json as JsonReport | undefined;
  if (!report || typeof report !== 'object' || !Array.isArray(report.checks)) {
    throw new Error(`no JSON report on stdout (exit ${result.code})\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
  }
  return report;
}

/** One check of a report by id; throws naming the ids present when it is missing. */
export function checkOf(report: JsonReport, id: string): JsonReport['checks'][number] {
  const found = report.checks.find((c) => c.id === id);
  if (!found) throw new Error(`no check "${id}" in the report (have: ${report.checks.map((c) => c.id).join(', ')})`);
  return found;
}

/** A temporary folder with the given files (relative path -> content); remove() deletes it. */
export async function tempProject(files: Record<string, string> = {}): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'soma-verify-e2e-'));
  for (const [name, content] of Object.entries(files)) {
    const path = join(dir, name);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, content);
  }
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}
