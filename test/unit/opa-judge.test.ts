// judge() of checks/opa.ts on answers shaped like OPA's public API: no server.
import { describe, expect, it } from 'vitest';
import { judge, type OpaFacts } from '../../checks/opa.js';
import { HttpError } from '../../src/clients/http.js';
import { settledAnswer } from '../support/http-answer.js';

const answer = (status: number, body: unknown) => settledAnswer(status, body, { totalMs: 2.2 });
const rules = (over: Record<string, unknown> = {}) => ({ url: 'http://opa:8181', bundles: false, plugins: false, decisions: [], ...over }) as Parameters<typeof judge>[1];
const healthy = (over: Partial<OpaFacts> = {}): OpaFacts => ({ health: [answer(200, {})], decisions: [], ...over });
const deny = { path: 'soma/policy/allow', input: {}, expect: false };

describe('opa judge', () => {
  it('passes a healthy OPA whose decisions come back as expected', () => {
    const v = judge(healthy({ decisions: [answer(200, { result: false })] }), rules({ decisions: [deny] }));
    expect(v).toMatchObject({ status: 'pass', message: 'OPA healthy, 1 decision as expected' });
    expect(v.details).toMatchObject({ latencyMs: 2, decisions: [{ path: 'soma/policy/allow', defined: true, result: false, matched: true }] });
  });

  it('fails a decision with another result, and one that is not loaded', () => {
    expect(judge(healthy({ decisions: [answer(200, { result: true })] }), rules({ decisions: [deny] })).message).toBe(
      'soma/policy/allow returned true, expected false',
    );
    expect(judge(healthy({ decisions: [answer(200, {})] }), rules({ decisions: [deny] })).message).toBe(
      'policy path soma/policy/allow not loaded (no result)',
    );
  });

  it('names the Rego reference and the API path of a decision alike', () => {
    const v = judge(healthy({ decisions: [answer(200, { result: false })] }), rules({ decisions: [{ ...deny, path: 'data.soma.policy.allow' }] }));
    expect(v.details?.decisions).toMatchObject([{ path: 'soma/policy/allow' }]);
  });

  it('fails bundles not activated, a token problem, and what is not OPA', () => {
    const v = judge({ health: [answer(200, {}), answer(500, { error: 'not all bundles activated' })], decisions: [] }, rules({ bundles: true }));
    expect(v.message).toBe('OPA at http://opa:8181: bundles not activated (HTTP 500: not all bundles activated)');
    expect(judge(healthy({ health: [answer(401, { code: 'unauthorized' })] }), rules()).message).toBe('OPA requires a token (HTTP 401) and none is configured');
    expect(judge(healthy({ health: [answer(200, '<html>')] }), rules()).message).toMatch(/^not an OPA API at http:\/\/opa:8181 \(GET \/health answered HTTP 200/);
    const refused = { status: 'rejected', reason: new HttpError('connection refused on opa:8181', 'ECONNREFUSED') } as const;
    expect(judge(healthy({ health: [refused] }), rules()).message).toBe('GET /health: connection refused on opa:8181');
  });
});

describe('opa options', () => {
  it('without decisions asks SomaStack default (soma/policy/allow must be false), in a check of your own too; [] asks none', async () => {
    const { default: opa } = await import('../../checks/opa.js');
    const validate = (o: unknown) => opa.options['~standard'].validate(o) as { value?: { decisions: unknown[] }; issues?: Array<{ message: string }> };
    expect(validate({ url: 'http://opa:8181' }).value!.decisions).toEqual([{ path: 'soma/policy/allow', input: {}, expect: false }]);
    expect(validate({ url: 'http://opa:8181', decisions: [] }).value!.decisions).toEqual([]);
  });

  it('refuses a misspelt key of a decision instead of dropping it ("expected" for "expect")', async () => {
    const { default: opa } = await import('../../checks/opa.js');
    const r = opa.options['~standard'].validate({ url: 'http://opa:8181', decisions: [{ path: 'soma/policy/allow', expected: false }] }) as { issues?: Array<{ message: string }> };
    expect(r.issues?.map((i) => i.message)).toEqual(['unknown key "expected"']);
  });
});
