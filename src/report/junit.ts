// JUnit XML, one testcase per check (per step of a smoke scenario), for CI systems that show test
// reports. Written by hand: the format is a few elements, and the builders on npm pull in an XML
// stack for that.
import { type Renderer, unfinished } from './report.js';

export const renderJunit: Renderer = (report, { strict }) => {
  const failing = (status: string) => status === 'fail' || (strict && status === 'warn');
  let failures = 0;
  let skipped = 0;
  const testcase = (name: string, classname: string, durationMs: number, status: string, message: string, body: string) => {
    const attrs = `name="${xml(name)}" classname="${xml(classname)}" time="${(durationMs / 1000).toFixed(3)}"`;
    let inner = '';
    if (failing(status)) {
      failures++;
      inner = `<failure message="${xml(message)}" type="${status}">${xml(body)}</failure>`;
    } else if (status === 'skip') {
      skipped++;
      inner = `<skipped message="${xml(message)}"/>`;
    } else {
      inner = `<system-out>${xml(`${status.toUpperCase()}: ${body}`)}</system-out>`;
    }
    return `    <testcase ${attrs}>${inner}</testcase>`;
  };
  const cases = report.checks.flatMap((check) => {
    const details = Object.keys(check.details).length ? JSON.stringify(check.details, null, 2) : '';
    const body = `${check.target}\n${check.message}${details ? `\n${details}` : ''}`;
    // >>> smoke scenarios: one testcase per step, classname the scenario id; the row itself too
    // when no step carries its failure (so a failed scenario always fails the suite).
    const steps = stepsOf(check.details);
    if (steps) {
      const out = steps.map((s) => testcase(s.name, check.id, s.durationMs, s.status, s.message, `${check.target}\n${s.message}`));
      if (failing(check.status) && !steps.some((s) => failing(s.status)))
        out.push(testcase(check.id, check.id, check.durationMs, check.status, check.message, body));
      return out;
    }
    // <<< smoke scenarios
    return [testcase(check.id, `soma-verify.${report.env}.${check.service ?? check.kind}`, check.durationMs, check.status, check.message, body)];
  });
  // An interrupted run, or a --wait that ran out, fails the suite even when every check passed.
  const why = unfinished(report);
  if (why) cases.push(testcase('run did not finish', `soma-verify.${report.env}`, report.durationMs, 'fail', why, why));
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="soma-verify" tests="${cases.length}" failures="${failures}" errors="0" skipped="${skipped}" time="${(report.durationMs / 1000).toFixed(3)}">`,
    `  <testsuite name="${xml(report.env)}" tests="${cases.length}" failures="${failures}" errors="0" skipped="${skipped}" time="${(report.durationMs / 1000).toFixed(3)}" timestamp="${report.startedAt}">`,
    ...cases,
    '  </testsuite>',
    '</testsuites>',
    '',
  ].join('\n');
};

interface StepRow {
  name: string;
  status: string;
  durationMs: number;
  message: string;
}

/** A scenario's `details.steps`, when the row has well-formed ones. */
function stepsOf(details: Record<string, unknown>): StepRow[] | undefined {
  const steps = details.steps;
  if (!Array.isArray(steps) || steps.length === 0) return undefined;
  const ok = steps.every(
    (s) => s && typeof s.name === 'string' && typeof s.status === 'string' && typeof s.durationMs === 'number' && typeof s.message === 'string',
  );
  return ok ? (steps as StepRow[]) : undefined;
}

/** Escape for XML text and attributes, dropping characters XML 1.0 cannot carry. */
function xml(text: string): string {
  return text
    .replace(/[^\x09\x0A\x0D\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}
