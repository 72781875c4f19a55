// --format github: workflow command escaping as the runner unescapes it, no injection from text a
// service sent back, the annotation budget, and the job summary (failures first, under 1 MiB).
import { describe, expect, it } from 'vitest';
import type { CheckResult, Status } from '../../src/check.js';
import { buildReport } from '../../src/report/report.js';
import { ANNOTATIONS_PER_STEP, escapeData, escapeProperty, renderGithub, summaryMarkdown } from '../../src/report/github.js';

const check = (id: string, status: Status, message = `${id} says ${status}`): CheckResult => ({
  id,
  kind: 'http',
  target: `GET http://${id}.example/`,
  status,
  durationMs: 12.3,
  message,
  details: {},
});
const report = (checks: CheckResult[]) => buildReport('staging', new Date(0), 42, checks, false);
const render = (checks: CheckResult[], strict = false) => renderGithub(report(checks), { color: false, strict });

/** The runner's own reading of a line (actions/runner ActionCommand.TryParseV2), for what it would run. */
function commandOf(line: string): { command: string; properties: Record<string, string>; data: string } | undefined {
  const m = /^::([^ :]+)(?: ([^:]*))?::(.*)$/s.exec(line);
  if (!m) return undefined;
  const unescape = (t: string) => t.replace(/%0D/g, '\r').replace(/%0A/g, '\n').replace(/%3A/g, ':').replace(/%2C/g, ',').replace(/%25/g, '%');
  const properties = Object.fromEntries(
    (m[2] ?? '').split(',').filter(Boolean).map((kv) => {
      const [k, ...v] = kv.split('=');
      return [k!, unescape(v.join('='))];
    }),
  );
  return { command: m[1]!, properties, data: unescape(m[3]!) };
}

describe('workflow command escaping', () => {
  it('escapes % CR LF in data, and also : and , in properties, round-tripping through the runner', () => {
    expect(escapeData('100% done\r\nnext')).toBe('100%25 done%0D%0Anext');
    expect(escapeProperty('a:b,c%\n')).toBe('a%3Ab%2Cc%25%0A');
    const nasty = 'x:%0A,y\r\n::set-output name=z::1 %25';
    const [line] = render([check(nasty, 'fail', nasty)]).split('\n');
    const parsed = commandOf(line!)!;
    expect(parsed.command).toBe('error');
    expect(parsed.properties.title).toBe(nasty);
    expect(parsed.data).toBe(`${nasty} (GET http://${nasty}.example/)`);
  });

  it('text from a service cannot start a command of its own: every line is ours', () => {
    const body = 'upstream said:\n::set-output name=ok::true\r\n::add-mask::\n::stop-commands::pwned\n::error::fake';
    const out = render([check('sfm.health', 'fail', body), check('gateway.health', 'pass', body), check('x', 'skip', body)]);
    const lines = out.split('\n').filter(Boolean);
    const commands = lines.filter((l) => l.startsWith('::')).map((l) => commandOf(l)!.command);
    expect(commands).toEqual(['error', 'group', 'endgroup']);
    for (const l of lines) expect(l.startsWith('::') || l.startsWith('soma-verify: ')).toBe(true);
    // The log lists every check, each on one line.
    expect(lines.filter((l) => l.startsWith('soma-verify: ') && /sfm\.health|gateway\.health| x /.test(l))).toHaveLength(3);
  });

  it('a passing run annotates nothing and says so in its last line', () => {
    const out = render([check('a', 'pass'), check('b', 'pass')]);
    expect(out).not.toMatch(/^::(error|warning)/m);
    expect(out.trimEnd().split('\n').at(-1)).toBe('soma-verify: PASS staging: 2 checks, 2 passed, 0 warned, 0 failed, 0 skipped in 42 ms');
  });
});

describe('annotation budget', () => {
  it('10 errors and 10 warnings at most: the last one of each says how many more, and which', () => {
    const checks = [
      ...Array.from({ length: 14 }, (_, i) => check(`f${i}`, 'fail')),
      ...Array.from({ length: 12 }, (_, i) => check(`w${i}`, 'warn')),
    ];
    const lines = render(checks).split('\n');
    const errors = lines.filter((l) => l.startsWith('::error '));
    const warnings = lines.filter((l) => l.startsWith('::warning '));
    expect(errors).toHaveLength(ANNOTATIONS_PER_STEP);
    expect(warnings).toHaveLength(ANNOTATIONS_PER_STEP);
    expect(commandOf(errors[8]!)!.properties.title).toBe('f8');
    expect(commandOf(errors[9]!)!.data).toMatch(/^5 more checks failed .*: f9, f10, f11, f12, f13$/);
    expect(commandOf(warnings[9]!)!.data).toMatch(/^3 more checks warned .*: w9, w10, w11$/);
  });

  it('exactly 10 fit without a "more" line; under --strict a warning is an error', () => {
    const ten = render(Array.from({ length: 10 }, (_, i) => check(`f${i}`, 'fail')));
    expect(ten).not.toContain('more checks');
    expect(ten.split('\n').filter((l) => l.startsWith('::error '))).toHaveLength(10);
    const strict = render([check('w', 'warn')], true);
    expect(strict).toMatch(/^::error title=w::/m);
    expect(strict).not.toMatch(/^::warning/m);
  });
});

describe('job summary', () => {
  it('a table of every check, failures first, with Markdown and HTML neutralised', () => {
    const md = summaryMarkdown(report([check('a', 'pass'), check('b', 'skip'), check('c', 'fail', 'bad | <script>x</script> [link](http://e) `code`\nline2'), check('d', 'warn')]), false);
    const rows = md.split('\n').filter((l) => /^\| (❌|⚠️|⏭️|✅)/.test(l));
    expect(rows.map((r) => r.split(' | ')[1])).toEqual(['c', 'd', 'b', 'a']);
    expect(rows[0]).toContain('bad \\| &lt;script&gt;x&lt;/script&gt; \\[link\\](http://e) \\`code\\` line2');
    expect(md).toMatch(/^### soma-verify: FAIL staging: 4 checks/);
  });

  it('stays within the limit it is given and says how many checks it left out', () => {
    const checks = Array.from({ length: 5000 }, (_, i) => check(`check-${i}`, i % 7 ? 'pass' : 'fail', 'm'.repeat(400)));
    const md = summaryMarkdown(report(checks), false);
    expect(Buffer.byteLength(md)).toBeLessThanOrEqual(1024 * 1024);
    const shown = md.split('\n').filter((l) => l.startsWith('| ✅') || l.startsWith('| ❌')).length;
    expect(md).toContain(`${5000 - shown} more checks not shown`);
    // Failures first: every failure made it in before any pass.
    expect(md.split('\n').filter((l) => l.startsWith('| ❌'))).toHaveLength(checks.filter((c) => c.status === 'fail').length);
    const small = summaryMarkdown(report(checks), false, 10_000);
    expect(Buffer.byteLength(small)).toBeLessThanOrEqual(10_000);
  });
});
