// GitHub Actions: workflow commands (`::error title=...::message`) that the runner turns into
// annotations, a log group listing every check, and a Markdown job summary.
//
// Everything here renders the redacted report. Text a service sent back (quoted in messages)
// cannot inject a workflow command: the runner reads a command only at the start of a line, every
// line written here starts with a fixed prefix, and data is escaped as the runner unescapes it
// (actions/toolkit, packages/core/src/command.ts): %, CR and LF in data, also : and , in
// properties. Written by hand: @actions/core would only add these two functions and a process.env
// reader, and it writes to stdout by itself rather than returning one document.
import { appendFile, stat } from 'node:fs/promises';
import type { CheckResult, Status } from '../check.js';
import { checksCount, type Renderer, type Report, unfinished, verdictOf } from './report.js';

/** GitHub keeps this many error (and this many warning) annotations per step, silently dropping more. */
export const ANNOTATIONS_PER_STEP = 10;
/** The job summary a step may write ($GITHUB_STEP_SUMMARY), GitHub's limit. */
export const SUMMARY_LIMIT_BYTES = 1024 * 1024;

export function escapeData(text: string): string {
  return text.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

export function escapeProperty(text: string): string {
  return escapeData(text).replace(/:/g, '%3A').replace(/,/g, '%2C');
}

/** A plain log line: one line, and never read as a command (it starts with "soma-verify:"). */
const logLine = (text: string) => `soma-verify: ${text.replace(/[\r\n\u2028\u2029]+/g, ' ')}`;

export const renderGithub: Renderer = (report, { strict }) => {
  const isError = (c: CheckResult) => c.status === 'fail' || (strict && c.status === 'warn');
  const errors = report.checks.filter(isError);
  const warnings = report.checks.filter((c) => c.status === 'warn' && !isError(c));
  const lines = [
    ...(unfinished(report) ? [`::error title=${escapeProperty('soma-verify did not finish')}::${escapeData(`the run on ${report.env}: ${unfinished(report)}; it is not a pass`)}`] : []),
    ...annotate('error', errors, 'failed'),
    ...annotate('warning', warnings, 'warned'),
    `::group::${escapeData(logLine(`${checksCount(report.checks.length)} on ${report.env}`))}`,
    ...report.checks.map((c) =>
      logLine(`${c.status.toUpperCase()} ${c.id} ${c.target}${c.status === 'skip' ? '' : ` ${Math.round(c.durationMs)} ms`}: ${c.message}`),
    ),
    '::endgroup::',
    logLine(verdictLine(report)),
    '',
  ];
  return lines.join('\n');
};

/** The first annotations GitHub will keep; when there are more, the last one says how many and which. */
function annotate(command: 'error' | 'warning', checks: CheckResult[], verb: string): string[] {
  const shown = checks.length > ANNOTATIONS_PER_STEP ? checks.slice(0, ANNOTATIONS_PER_STEP - 1) : checks;
  const lines = shown.map((c) => `::${command} title=${escapeProperty(c.id)}::${escapeData(`${c.message} (${c.target})`)}`);
  const rest = checks.slice(shown.length);
  if (rest.length) {
    const ids = rest.map((c) => c.id).join(', ');
    lines.push(
      `::${command} title=${escapeProperty(`${moreChecks(rest.length)} ${verb}`)}::${escapeData(`${moreChecks(rest.length)} ${verb} (GitHub shows ${ANNOTATIONS_PER_STEP} annotations of a kind per step; all are in the log and the job summary): ${ids}`)}`,
    );
  }
  return lines;
}

function verdictLine(report: Report): string {
  const s = report.summary;
  return `${verdictOf(report)} ${report.env}: ${checksCount(report.checks.length)}, ${s.pass} passed, ${s.warn} warned, ${s.fail} failed, ${s.skip} skipped in ${Math.round(report.durationMs)} ms`;
}

/** "1 more check", "12 more checks". */
const moreChecks = (n: number) => `${n} more check${n === 1 ? '' : 's'}`;

const ORDER: Record<Status, number> = { fail: 0, warn: 1, skip: 2, pass: 3 };
const ICON: Record<Status, string> = { fail: '❌ fail', warn: '⚠️ warn', skip: '⏭️ skip', pass: '✅ pass' };
/** A long message is cut in the summary (the JSON report has it whole), so one check cannot eat the budget. */
const CELL_MAX = 500;

/** A table cell: one line, no HTML, no Markdown that could link, emphasise or break the table. */
function cell(text: string): string {
  const flat = text.replace(/[\r\n\u2028\u2029]+/g, ' ');
  const cut = flat.length > CELL_MAX ? `${flat.slice(0, CELL_MAX)}…` : flat;
  return cut
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/([\\`*_[\]|~!])/g, '\\$1');
}

/** The job summary in Markdown, failures first, at most `limitBytes` long. */
export function summaryMarkdown(report: Report, strict: boolean, limitBytes = SUMMARY_LIMIT_BYTES): string {
  const head = [
    `### soma-verify: ${cell(verdictLine(report))}`,
    '',
    '| status | check | target | latency | message |',
    '|---|---|---|---|---|',
  ].join('\n');
  const checks = [...report.checks].sort((a, b) => rank(a, strict) - rank(b, strict));
  const more = (n: number) => `\n\n${moreChecks(n)} not shown: the job summary of a step is limited to 1 MiB.\n`;
  let out = `${head}\n`;
  let bytes = Buffer.byteLength(out);
  const reserve = Buffer.byteLength(more(checks.length));
  for (let i = 0; i < checks.length; i++) {
    const c = checks[i]!;
    const row = `| ${ICON[c.status]} | ${cell(c.id)} | ${cell(c.target)} | ${c.status === 'skip' ? '' : `${Math.round(c.durationMs)} ms`} | ${cell(c.message)} |\n`;
    const size = Buffer.byteLength(row);
    if (bytes + size + reserve > limitBytes) return out + more(checks.length - i);
    out += row;
    bytes += size;
  }
  return `${out}\n`;
}

function rank(c: CheckResult, strict: boolean): number {
  return strict && c.status === 'warn' ? ORDER.fail : ORDER[c.status];
}

/** Append the summary to $GITHUB_STEP_SUMMARY, within what is left of the step's 1 MiB. */
export async function appendStepSummary(path: string, report: Report, strict: boolean): Promise<void> {
  const used = await stat(path).then(
    (s) => s.size,
    () => 0,
  );
  const left = SUMMARY_LIMIT_BYTES - used;
  if (left < 4096) throw new Error(`only ${left} bytes left of the step's 1 MiB summary`);
  await appendFile(path, summaryMarkdown(report, strict, left));
}
