// judge() of checks/http.ts on answers built by hand: no server.
import * as valibot from 'valibot';
import { describe, expect, it } from 'vitest';
import { judge } from '../../checks/http.js';
import { condition } from '../../src/conditions.js';
import { httpAnswer } from '../support/http-answer.js';

const answer = (status: number, body: unknown, totalMs = 12.34) => httpAnswer(status, body, { totalMs, firstByteMs: 5.55 });
const rules = (over: Partial<Parameters<typeof judge>[1]> = {}) => ({ expectStatus: [200], conditions: [], ...over });

describe('http judge', () => {
  it('passes an expected status, reporting latency, first byte and size', () => {
    const v = judge(answer(200, { status: 'ok' }), rules());
    expect(v).toEqual({
      status: 'pass',
      message: 'HTTP 200 in 12.3 ms',
      details: { httpStatus: 200, latencyMs: 12.3, firstByteMs: 5.6, bytes: 15 },
      latencyMs: 12.3,
    });
  });

  it('fails another status, quoting the start of the body', () => {
    const v = judge(answer(503, 'x'.repeat(400)), rules({ expectStatus: [200, 204] }));
    expect(v.message).toBe('HTTP 503, expected 200 or 204');
    expect(v.details?.body).toBe(`${'x'.repeat(300)}…`); // cut where the redactor looks for a cut secret
  });

  it('judges body conditions and says which fail', () => {
    const conditions = [valibot.parse(condition, { path: 'status', equals: 'ok' }), valibot.parse(condition, { path: 'n', gt: 5 })];
    const v = judge(answer(200, { status: 'ok', n: 3 }), rules({ conditions }));
    expect(v.status).toBe('fail');
    expect(v.message).toMatch(/^n /);
    expect(judge(answer(200, { status: 'ok', n: 9 }), rules({ conditions })).message).toBe('HTTP 200 in 12.3 ms, 2 conditions hold');
  });

  it('fails an answer slower than maxLatencyMs', () => {
    expect(judge(answer(200, {}, 900), rules({ maxLatencyMs: 800 })).message).toBe('answered in 900 ms, over 800 ms');
  });
});
