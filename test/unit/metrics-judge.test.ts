// judge() of checks/metrics.ts on /metrics answers built by hand: no server.
import { describe, expect, it } from 'vitest';
import { judge } from '../../checks/metrics.js';
import { httpAnswer } from '../support/http-answer.js';

const answer = (status: number, text: string) => httpAnswer(status, text, { headers: { 'content-type': 'text/plain; version=0.0.4' } });
const exposition = [
  '# TYPE api_requests_total counter',
  'api_requests_total{path="/health",status="200"} 3',
  'api_requests_total{path="/store",status="500"} 1',
  '# TYPE process_cpu_seconds_total counter',
  'process_cpu_seconds_total 1.5',
  '',
].join('\n');
const rules = (over: Record<string, unknown> = {}) => ({ url: 'http://sfm:9595/metrics', series: [], minSeries: 1, ...over }) as Parameters<typeof judge>[1];

describe('metrics judge', () => {
  it('passes and counts series and families', () => {
    const v = judge(answer(200, exposition), rules());
    expect(v).toMatchObject({ status: 'pass', message: '3 series in 2 families', details: { seriesCount: 3, familyCount: 2, sampleCount: 3 } });
  });

  it('sums the samples that match name and labels (exact and ~regex) and compares the sum', () => {
    const v = judge(answer(200, exposition), rules({ series: [{ name: 'api_requests_total', labels: { status: '~2..' }, value: { op: '>', value: 2 } }] }));
    expect(v.message).toBe('3 series; api_requests_total{status=~"2.."} present (sum 3)');
    const low = judge(answer(200, exposition), rules({ series: [{ name: 'api_requests_total', value: { op: '>', value: 10 } }] }));
    expect(low).toMatchObject({ status: 'fail', message: 'api_requests_total sum 4, expected > 10 at http://sfm:9595/metrics' });
  });

  it('fails a missing series, and a set of anyOf none of which holds', () => {
    expect(judge(answer(200, exposition), rules({ series: [{ name: 'nope' }] })).message).toBe('nope missing at http://sfm:9595/metrics');
    const v = judge(answer(200, exposition), rules({ anyOf: [{ name: 'gen1', series: [{ name: 'x' }] }, { name: 'gen2', series: [{ name: 'process_cpu_seconds_total' }] }] }));
    expect(v).toMatchObject({ status: 'pass', details: { matched: 'gen2' } });
    const none = judge(answer(200, exposition), rules({ anyOf: [{ name: 'gen1', series: [{ name: 'x' }] }] }));
    expect(none.message).toBe('no set of series matched: gen1: x missing at http://sfm:9595/metrics');
  });

  it('fails too few series, a status other than 200 (with a token hint) and a body that is not the format', () => {
    expect(judge(answer(200, ''), rules()).message).toBe('only 0 series, expected at least 1 at http://sfm:9595/metrics');
    expect(judge(answer(401, ''), rules()).message).toBe('HTTP 401 from http://sfm:9595/metrics (no token set)');
    expect(judge(answer(403, ''), rules({ token: 't' })).message).toBe('HTTP 403 from http://sfm:9595/metrics (token rejected)');
    expect(judge(answer(200, '<html>'), rules()).message).toMatch(/^not Prometheus text format at http:\/\/sfm:9595\/metrics: /);
  });
});
