// The table report: the box look (one row per check, the message wrapped in its column), colour
// codes never cut, wide characters measured as two columns, and the same layout at any count.
import { describe, expect, it } from 'vitest';
import type { CheckResult } from '../../src/check.js';
import type { Report } from '../../src/report/report.js';
import { renderTable, wrap } from '../../src/report/table.js';

const check = (id: string, status: CheckResult['status'], target: string, message: string, durationMs = 12, latencyMs?: number): CheckResult => ({
  id, kind: 'http', target, status, durationMs, ...(latencyMs === undefined ? {} : { latencyMs }), message, details: {},
});
const reportOf = (checks: CheckResult[]): Report => {
  const summary = { pass: 0, warn: 0, fail: 0, skip: 0 };
  for (const c of checks) summary[c.status]++;
  return { schemaVersion: 1, env: 'staging', status: summary.fail ? 'fail' : 'pass', startedAt: '', durationMs: 1234, checks, summary };
};
const strip = (text: string) => text.replace(/\x1b\[\d+m/g, '');

describe('table report', () => {
  const report = reportOf([
    check('sfm.health', 'fail', 'http://127.0.0.1:9595', 'vector_store is false: Qdrant unreachable from SFM (detected gen1)', 11.8, 1.9),
    check('sfm.metrics', 'skip', 'http://127.0.0.1:9595/metrics', 'blocked by sfm.health'),
    check('postgres', 'pass', 'postgresql://soma@127.0.0.1:30106/soma', 'PostgreSQL 16.4 answers', 1500),
  ]);

  it('draws one box row per check, the latency column showing latencyMs, else the whole check time', () => {
    expect(renderTable(report, { color: false, strict: false })).toBe(
      [
        '┌──────┬─────────────┬────────────────────────────────────────┬─────────┬────────────────────────────────────────────────────────────────────────────────┐',
        '│      │ check       │ target                                 │ latency │ message                                                                        │',
        '├──────┼─────────────┼────────────────────────────────────────┼─────────┼────────────────────────────────────────────────────────────────────────────────┤',
        '│ FAIL │ sfm.health  │ http://127.0.0.1:9595                  │ 2 ms    │ vector_store is false: Qdrant unreachable from SFM (detected gen1)             │',
        '│ SKIP │ sfm.metrics │ http://127.0.0.1:9595/metrics          │         │ blocked by sfm.health                                                          │',
        '│ PASS │ postgres    │ postgresql://soma@127.0.0.1:30106/soma │ 1.50 s  │ PostgreSQL 16.4 answers                                                        │',
        '└──────┴─────────────┴────────────────────────────────────────┴─────────┴────────────────────────────────────────────────────────────────────────────────┘',
        'FAIL staging: 3 checks, 1 passed, 0 warned, 1 failed, 1 skipped in 1.23 s',
        '',
      ].join('\n'),
    );
  });

  it('wraps a long message inside its column, at spaces, and cuts a word longer than a line', () => {
    expect(wrap('aaa bbb ccc', 7)).toEqual(['aaa bbb', 'ccc']);
    expect(wrap('abcdefghij', 4)).toEqual(['abcd', 'efgh', 'ij']);
    expect(wrap('日本語テキスト', 6)).toEqual(['日本語', 'テキス', 'ト']);
    const long = renderTable(reportOf([check('x', 'warn', 't', `${'word '.repeat(40)}end`)]), { color: false, strict: false });
    const rows = long.split('\n').filter((l) => l.startsWith('│')).slice(1); // after the head
    expect(rows.length).toBeGreaterThan(2);
    expect(rows.map((r) => r.split('│')[5]!.trim()).join(' ')).toBe(`${'word '.repeat(40)}end`);
  });

  it('keeps every line of the box the same width, with colour codes whole and wide characters counted twice', () => {
    const wide = reportOf([...report.checks, check('ünïcödé.✓', 'pass', '日本語ターゲット', 'emoji 🚀 ok\tand a tab')]);
    for (const color of [false, true]) {
      const text = renderTable(wide, { color, strict: false });
      const box = text.split('\n').slice(0, -2);
      const widths = new Set(box.map((l) => [...strip(l)].reduce((n, ch) => n + (/[\u3000-\u9fff\u{1F300}-\u{1FAFF}]/u.test(ch) ? 2 : 1), 0)));
      expect(widths.size).toBe(1);
      // Every escape sequence is complete: nothing left once the codes are removed.
      expect(strip(text)).not.toMatch(/\x1b|\[\d+m/);
      if (color) expect(text).toContain('\x1b[31mFAIL\x1b[39m');
    }
  });
});
