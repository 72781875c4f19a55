import * as valibot from 'valibot';
import { describe, expect, it } from 'vitest';
import { condition, evaluateCondition, getJsonPath } from '../../src/conditions.js';

const body = { status: 'ok', n: 5, list: [{ name: 'redis', ms: 1.5 }], nested: { ok: true } };
const check = (c: unknown) => evaluateCondition(valibot.parse(condition, c), body, JSON.stringify(body));

describe('conditions', () => {
  it('reads JSON paths with keys and indexes', () => {
    expect(getJsonPath(body, '$.list[0].name')).toBe('redis');
    expect(getJsonPath(body, 'list.0.ms')).toBe(1.5);
    expect(typeof getJsonPath(body, 'nope.x')).toBe('symbol');
  });
  it('equals and oneOf', () => {
    expect(check({ path: 'status', equals: 'ok' }).ok).toBe(true);
    expect(check({ path: 'nested', equals: { ok: true } }).ok).toBe(true);
    const bad = check({ path: 'status', oneOf: ['healthy', 'up'] });
    expect(bad).toEqual({ ok: false, description: 'status is "ok", expected one of ["healthy","up"]' });
  });
  it('exists', () => {
    expect(check({ path: 'list[0].name', exists: true }).ok).toBe(true);
    expect(check({ path: 'missing', exists: true }).description).toBe('missing is missing, expected to exist');
    expect(check({ path: 'missing', exists: false }).ok).toBe(true);
  });
  it('number comparisons refuse non-numbers', () => {
    expect(check({ path: 'n', gt: 4, lte: 5 }).ok).toBe(true);
    expect(check({ path: 'n', lt: 5 }).ok).toBe(false);
    expect(check({ path: 'status', gte: 1 }).description).toMatch(/expected a number gte 1/);
  });
  it('regex on a value and on the whole body', () => {
    expect(check({ path: 'status', matches: '^o' }).ok).toBe(true);
    expect(evaluateCondition(valibot.parse(condition, { matches: 'all shards' }), undefined, 'all shards are ready').ok).toBe(true);
  });
  it('a missing value matches no regex; a path into a body that is not JSON is no verdict of absence; an empty body has no $', () => {
    expect(check({ path: 'version', matches: '^[0-9.]*$' })).toEqual({ ok: false, description: 'version is missing, expected to match /^[0-9.]*$/' });
    const html = (c: unknown) => evaluateCondition(valibot.parse(condition, c), undefined, '<h1>Internal error: database down</h1>');
    expect(html({ path: 'error', exists: false })).toEqual({ ok: false, description: 'error: the body is not JSON' });
    expect(evaluateCondition(valibot.parse(condition, { path: '$', exists: true }), undefined, '').ok).toBe(false);
  });

  it('rejects a condition that compares nothing or a broken regex', () => {
    expect(valibot.safeParse(condition, { path: 'a' }).success).toBe(false);
    expect(valibot.safeParse(condition, { path: 'a', matches: '(' }).success).toBe(false);
  });
});
