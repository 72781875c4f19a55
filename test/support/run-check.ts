// Runs a compiled check kind (dist/checks/<kind>.js) in a child process, so a test proves both
// the outcome and that nothing is left open: the child must exit by itself.
import { spawn } from 'node:child_process';
import { expect } from 'vitest';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';

const root = resolve(fileURLToPath(import.meta.url), '../../..');
const child = resolve(root, 'test/support/check-child.mjs');

export interface ChildOutcome {
  status: 'pass' | 'warn' | 'fail' | 'skip';
  message: string;
  details?: Record<string, unknown>;
  target: string;
  logs: string[];
  durationMs: number;
  /** Whole life of the child process, start-up included. */
  wallMs: number;
  /** stdout + stderr of the child, to assert that no secret was printed. */
  output: string;
  /** What the child printed on stderr: driver warnings, unhandled errors. */
  stderr: string;
  invalid?: string[];
  threw?: boolean;
  /** The outcome's `unanswered`, as the kind returned it (the pacing of --wait). */
  unanswered?: { host: string; port: number; refused: boolean };
}

export async function runCheck(
  kind: string,
  options: unknown,
  { timeoutMs = 5000, graceMs = 3000 } = {},
): Promise<ChildOutcome> {
  const modulePath = resolve(root, 'dist/checks', `${kind}.js`);
  const started = performance.now();
  const proc = spawn(process.execPath, [child, modulePath, JSON.stringify(options), String(timeoutMs)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d) => (stdout += d));
  proc.stderr.on('data', (d) => (stderr += d));
  const exited = await new Promise<boolean>((done) => {
    const killer = setTimeout(() => {
      proc.kill('SIGKILL');
      done(false);
    }, timeoutMs + graceMs);
    proc.on('exit', () => {
      clearTimeout(killer);
      done(true);
    });
  });
  const wallMs = performance.now() - started;
  if (!exited) {
    throw new Error(
      `check ${kind} did not exit within ${timeoutMs + graceMs} ms (open handle or hang); output: ${stdout}${stderr}`,
    );
  }
  if (!stdout) throw new Error(`check ${kind} printed nothing; stderr: ${stderr}`);
  return { ...JSON.parse(stdout), wallMs, output: stdout + stderr, stderr };
}

/** Slack for a child process's start-up and a busy machine, on top of a check's own timeout. */
export const MARGIN_MS = 4000;

/** A failure (not a crash) whose message names the cause, within the timeout plus the margin. */
export function expectFailure(result: ChildOutcome, cause: RegExp, timeoutMs: number): void {
  expect(result.threw).toBeUndefined();
  expect(result.status, result.message).toBe('fail');
  expect(result.message).toMatch(cause);
  expect(result.wallMs).toBeLessThan(timeoutMs + MARGIN_MS);
}

/**
 * The forms in which a server may echo a secret, and so the forms a test must not find in what
 * the CLI prints: raw, URL-encoded, JSON-escaped, base64 (and of `user:secret` when given a user).
 */
export function echoForms(secret: string, user?: string): string[] {
  const forms = [secret, encodeURIComponent(secret), JSON.stringify(secret).slice(1, -1), Buffer.from(secret).toString('base64')];
  if (user !== undefined) forms.push(Buffer.from(`${user}:${secret}`).toString('base64'));
  return [...new Set(forms)];
}

/** No form of `secret` in `printed` (what the CLI would print), each named when it is found. */
export function expectNoSecret(printed: string, secret: string, user?: string): void {
  for (const form of echoForms(secret, user)) expect(printed, `the secret leaked as "${form}"`).not.toContain(form);
}
