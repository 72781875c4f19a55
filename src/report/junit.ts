// JUnit XML, one testcase per check, for CI systems that show test reports. Written by hand:
// the format is a few elements, and the builders on npm pull in an XML stack for that.
import type { Renderer } from './report.js';

export const renderJunit: Renderer = (report, { strict }) => {
  const failures = report.summary.fail + (strict ? report.summary.warn : 0);
  const cases = report.checks.map((check) => {
    const attrs = `name="${xml(check.id)}" classname="${xml(`soma-verify.${report.env}.${check.service ?? check.kind}`)}" time="${(check.durationMs / 1000).toFixed(3)}"`;
    const details = Object.keys(check.details).length ? JSON.stringify(check.details, null, 2) : '';
    const body = `${check.target}\n${check.message}${details ? `\n${details}` : ''}`;
    let inner = '';
    if (check.status === 'fail' || (strict && check.status === 'warn')) {
      inner = `<failure message="${xml(check.message)}" type="${check.status}">${xml(body)}</failure>`;
    } else if (check.status === 'skip') {
      inner = `<skipped message="${xml(check.message)}"/>`;
    } else {
      inner = `<system-out>${xml(`${check.status.toUpperCase()}: ${body}`)}</system-out>`;
    }
    return `    <testcase ${attrs}>${inner}</testcase>`;
  });
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="soma-verify" tests="${report.checks.length}" failures="${failures}" errors="0" skipped="${report.summary.skip}" time="${(report.durationMs / 1000).toFixed(3)}">`,
    `  <testsuite name="${xml(report.env)}" tests="${report.checks.length}" failures="${failures}" errors="0" skipped="${report.summary.skip}" time="${(report.durationMs / 1000).toFixed(3)}" timestamp="${report.startedAt}">`,
    ...cases,
    '  </testsuite>',
    '</testsuites>',
    '',
  ].join('\n');
};

/** Escape for XML text and attributes, dropping characters XML 1.0 cannot carry. */
function xml(text: string): string {
  return text
    .replace(/[^\x09\x0A\x0D\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}
