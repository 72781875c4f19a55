// The report every format renders: the documented, versioned JSON shape (README, "JSON report").
import type { CheckResult, Status } from '../check.js';

export const SCHEMA_VERSION = 1;

/** "1 check", "12 checks". */
export const checksCount = (n: number) => `${n} check${n === 1 ? '' : 's'}`;

/** Why a run whose checks may all have passed is still not a pass, for the renderers' verdicts. */
export function unfinished(report: Report): string | undefined {
  if (report.interrupted) return `interrupted by ${report.interrupted}`;
  return report.waitExpired;
}

/** The run's verdict in words: PASS, PASS with warnings, FAIL, or FAIL (why it did not finish). */
export function verdictOf(report: Report): string {
  const why = unfinished(report);
  return why ? `FAIL (${why})` : { pass: 'PASS', warn: 'PASS with warnings', fail: 'FAIL' }[report.status];
}

export interface Report {
  schemaVersion: typeof SCHEMA_VERSION;
  env: string;
  /** fail if any check failed or the run was interrupted; warn if any warned (fail under --strict); else pass. */
  status: 'pass' | 'warn' | 'fail';
  /** The signal that interrupted the run (SIGINT, SIGTERM, SIGHUP): what ran is reported, the run is not a pass. */
  interrupted?: string;
  /** --wait ran out before its goal was met (say, a streak of --consecutive passes): why. The run is not a pass. */
  waitExpired?: string;
  startedAt: string;
  durationMs: number;
  checks: CheckResult[];
  summary: Record<Status, number>;
}

export function buildReport(
  env: string,
  startedAt: Date,
  durationMs: number,
  checks: CheckResult[],
  strict: boolean,
  { interrupted, waitExpired }: { interrupted?: string; waitExpired?: string } = {},
): Report {
  const summary = { pass: 0, warn: 0, fail: 0, skip: 0 };
  for (const c of checks) summary[c.status]++;
  const status = interrupted || waitExpired || summary.fail > 0 || (strict && summary.warn > 0) ? 'fail' : summary.warn > 0 ? 'warn' : 'pass';
  return {
    schemaVersion: SCHEMA_VERSION,
    env,
    status,
    ...(interrupted ? { interrupted } : {}),
    ...(waitExpired ? { waitExpired } : {}),
    startedAt: startedAt.toISOString(),
    durationMs: Math.round(durationMs),
    // `unanswered` paces --wait; the message already says what did not answer.
    checks: checks.map(({ unanswered: _pacing, ...check }) => check),
    summary,
  };
}

export interface RenderOptions {
  color: boolean;
  strict: boolean;
}

export type Renderer = (report: Report, options: RenderOptions) => string;
