// The report for people: one row per check, then a summary line. A box table drawn here rather
// than by cli-table3, whose layout grows faster than linearly (8000 rows took 22 s) and whose
// wrapping cut colour codes in half: each cell is measured once (string-width, for wide
// characters), padded as plain text, and coloured after, so a row costs the same at any count.
import stringWidthOf from 'string-width';
import type { Status } from '../check.js';
import { checksCount, type Renderer, verdictOf } from './report.js';
import { paint } from './color.js';

const LABEL: Record<Status, string> = { pass: 'PASS', warn: 'WARN', fail: 'FAIL', skip: 'SKIP' };
const COLOR = { pass: 'green', warn: 'yellow', fail: 'red', skip: 'gray' } as const;

export const renderTable: Renderer = (report, { color }) => {
  const c = paint(color);
  const width = process.stdout.columns && process.stdout.isTTY ? process.stdout.columns : 160;
  const messageWidth = Math.max(30, width - 80);
  const rows = report.checks.map((check) => ({
    status: check.status,
    cells: [
      LABEL[check.status],
      clean(check.id),
      clean(check.target),
      check.status === 'skip' ? '' : formatMs(check.latencyMs ?? check.durationMs),
      clean(check.message),
    ],
  }));
  const head = ['', 'check', 'target', 'latency', 'message'];
  // Widths with one space of padding each side; id and target take what their longest needs.
  const widths = [6, 0, 0, 9, messageWidth];
  for (const col of [1, 2]) {
    widths[col] = Math.max(stringWidth(head[col]!), ...rows.map((r) => stringWidth(r.cells[col]!))) + 2;
  }
  const rule = (left: string, mid: string, right: string) => c.gray(`${left}${widths.map((w) => '─'.repeat(w)).join(mid)}${right}`);
  const bar = c.gray('│');
  const line = (cells: string[], paintCell: (text: string, col: number) => string) => {
    const wrapped = cells.map((text, col) => wrap(text, widths[col]! - 2));
    const height = Math.max(...wrapped.map((w) => w.length));
    const out: string[] = [];
    for (let i = 0; i < height; i++) {
      const parts = wrapped.map((w, col) => {
        const text = w[i] ?? '';
        return ` ${text ? paintCell(text, col) : ''}${' '.repeat(widths[col]! - 2 - stringWidth(text))} `;
      });
      out.push(`${bar}${parts.join(bar)}${bar}`);
    }
    return out.join('\n');
  };
  const lines = [rule('┌', '┬', '┐'), line(head, (text) => c.bold(text)), rule('├', '┼', '┤')];
  for (const row of rows) lines.push(line(row.cells, (text, col) => (col === 0 ? c[COLOR[row.status]](text) : text)));
  lines.push(rule('└', '┴', '┘'));

  const s = report.summary;
  const parts = [
    c.green(`${s.pass} passed`),
    s.warn ? c.yellow(`${s.warn} warned`) : `${s.warn} warned`,
    s.fail ? c.red(`${s.fail} failed`) : `${s.fail} failed`,
    `${s.skip} skipped`,
  ];
  const verdict = { pass: c.green, warn: c.yellow, fail: c.red }[report.status](verdictOf(report));
  return `${lines.join('\n')}\n${verdict} ${report.env}: ${checksCount(report.checks.length)}, ${parts.join(', ')} in ${formatMs(report.durationMs)}\n`;
};

/** Display columns of a text: its length when it is printable ASCII (nearly always), else string-width's count. */
function stringWidth(text: string): number {
  return /^[\x20-\x7e]*$/.test(text) ? text.length : stringWidthOf(text);
}

/** One line of cell text: tabs and line breaks would break the box. */
function clean(text: string): string {
  return text.replace(/[\t\r\n]+/g, ' ');
}

/** Lines of at most `width` columns, broken at spaces where a word fits, else inside the word. */
export function wrap(text: string, width: number): string[] {
  if (stringWidth(text) <= width) return [text];
  const lines: string[] = [];
  let current = '';
  let currentWidth = 0;
  for (const word of text.split(/(?<= )/)) {
    const wordWidth = stringWidth(word);
    // A trailing space may hang past the edge: it is trimmed at the break.
    if (currentWidth + stringWidth(word.trimEnd()) <= width) {
      current += word;
      currentWidth += wordWidth;
      continue;
    }
    if (current && stringWidth(word.trimEnd()) <= width) {
      lines.push(current.trimEnd());
      current = word;
      currentWidth = wordWidth;
      continue;
    }
    // A word longer than a line: cut it, character by character (wide ones count two).
    for (const char of word) {
      const w = stringWidth(char);
      if (currentWidth + w > width) {
        lines.push(current.trimEnd());
        current = '';
        currentWidth = 0;
      }
      current += char;
      currentWidth += w;
    }
  }
  if (current.trim()) lines.push(current.trimEnd());
  return lines.length ? lines : [''];
}

function formatMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`;
}
