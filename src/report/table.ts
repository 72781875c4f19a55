// The report for people: one row per check, then a summary line.
import Table from 'cli-table3';
import type { Status } from '../check.js';
import type { Renderer } from './report.js';
import { paint } from './color.js';

const LABEL: Record<Status, string> = { pass: 'PASS', warn: 'WARN', fail: 'FAIL', skip: 'SKIP' };
const COLOR = { pass: 'green', warn: 'yellow', fail: 'red', skip: 'gray' } as const;

export const renderTable: Renderer = (report, { color }) => {
  const c = paint(color);
  const width = process.stdout.columns && process.stdout.isTTY ? process.stdout.columns : 160;
  const messageWidth = Math.max(30, width - 80);
  const table = new Table({
    head: ['', 'check', 'target', 'latency', 'message'].map((h) => c.bold(h)),
    style: { head: [], border: color ? ['gray'] : [] },
    colWidths: [6, null, null, 9, messageWidth],
    wordWrap: true,
    wrapOnWordBoundary: false,
    // No rule between rows: one line per check reads faster.
    chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' },
  });
  for (const check of report.checks) {
    table.push([
      c[COLOR[check.status]](LABEL[check.status]),
      check.id,
      check.target,
      check.status === 'skip' ? '' : formatMs(check.latencyMs ?? check.durationMs),
      check.message,
    ]);
  }
  const s = report.summary;
  const parts = [
    c.green(`${s.pass} passed`),
    s.warn ? c.yellow(`${s.warn} warned`) : `${s.warn} warned`,
    s.fail ? c.red(`${s.fail} failed`) : `${s.fail} failed`,
    `${s.skip} skipped`,
  ];
  const verdict = { pass: c.green('PASS'), warn: c.yellow('PASS with warnings'), fail: c.red('FAIL') }[report.status];
  return `${table.toString()}\n${verdict} ${report.env}: ${report.checks.length} checks, ${parts.join(', ')} in ${formatMs(report.durationMs)}\n`;
};

function formatMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`;
}
