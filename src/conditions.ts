// Conditions on a response body: a JSON path and one comparison. Kept apart from the HTTP client
// (which only fetches) and from the kinds that use them.
import * as v from 'valibot';

const COMPARISONS = ['equals', 'oneOf', 'exists', 'gt', 'gte', 'lt', 'lte', 'matches'];

export const condition = v.pipe(
  v.strictObject({
    /** `$.status`, `components.redis.status`, `services[0].name`; `$` is the whole body. */
    path: v.optional(v.string(), '$'),
    equals: v.optional(v.unknown()),
    oneOf: v.optional(v.array(v.unknown())),
    exists: v.optional(v.boolean()),
    gt: v.optional(v.number()),
    gte: v.optional(v.number()),
    lt: v.optional(v.number()),
    lte: v.optional(v.number()),
    /** A regular expression the value (or the raw body, for `$`) must match. */
    matches: v.optional(v.string()),
  }),
  v.check((c) => COMPARISONS.some((k) => k in c), `a condition needs one of ${COMPARISONS.join(', ')}`),
  v.check((c) => c.matches === undefined || isRegex(c.matches), 'matches: not a valid regular expression'),
);
export type Condition = v.InferOutput<typeof condition>;

export interface ConditionResult {
  ok: boolean;
  /** What was expected and what was found, for the report. */
  description: string;
}

const MISSING = Symbol('missing');

export function evaluateCondition(c: Condition, json: unknown, rawBody: string): ConditionResult {
  // A path into a body that is not JSON says nothing: not "absent" (an HTML error page would pass
  // `exists: false`). `$` is the whole body, its text when it is not JSON; an empty one is absent.
  if (c.path !== '$' && json === undefined) return { ok: false, description: `${c.path}: the body is not JSON` };
  const found = c.path === '$' ? (json === undefined ? (rawBody === '' ? MISSING : rawBody) : json) : getJsonPath(json, c.path);
  const shown = found === MISSING ? 'missing' : JSON.stringify(found);
  const fail = (expected: string): ConditionResult => ({
    ok: false,
    description: `${c.path} is ${shown}, expected ${expected}`,
  });
  if (c.exists !== undefined && (found !== MISSING) !== c.exists)
    return fail(c.exists ? 'to exist' : 'to be absent');
  if (c.equals !== undefined && !deepEqual(found, c.equals)) return fail(JSON.stringify(c.equals));
  if (c.oneOf && !c.oneOf.some((v) => deepEqual(found, v)))
    return fail(`one of ${JSON.stringify(c.oneOf)}`);
  for (const [op, bound] of [['gt', c.gt], ['gte', c.gte], ['lt', c.lt], ['lte', c.lte]] as const) {
    if (bound === undefined) continue;
    if (typeof found !== 'number') return fail(`a number ${op} ${bound}`);
    const ok = op === 'gt' ? found > bound : op === 'gte' ? found >= bound : op === 'lt' ? found < bound : found <= bound;
    if (!ok) return fail(`${op} ${bound}`);
  }
  if (c.matches !== undefined) {
    if (found === MISSING) return fail(`to match /${c.matches}/`);
    const text = typeof found === 'string' ? found : JSON.stringify(found);
    if (!new RegExp(c.matches).test(text)) return fail(`to match /${c.matches}/`);
  }
  return { ok: true, description: `${c.path} ok` };
}

/** `a.b[0].c`, `$.a.b.0.c`: object keys and array indexes. */
export function getJsonPath(value: unknown, path: string): unknown {
  const parts = path
    .replace(/^\$\.?/, '')
    .split(/\.|\[(\d+)\]/)
    .filter((p) => p !== undefined && p !== '');
  let cur: unknown = value;
  for (const part of parts) {
    if (Array.isArray(cur) && /^\d+$/.test(part)) cur = cur[Number(part)];
    else if (cur && typeof cur === 'object' && Object.prototype.hasOwnProperty.call(cur, part))
      cur = (cur as Record<string, unknown>)[part];
    else return MISSING;
    if (cur === undefined) return MISSING;
  }
  return cur;
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => deepEqual((a as never)[k], (b as never)[k]));
}

function isRegex(text: string): boolean {
  try {
    new RegExp(text);
    return true;
  } catch {
    return false;
  }
}

/** The value at a JSON path (as getJsonPath reads it), or undefined when there is none. */
export function jsonPathValue(value: unknown, path: string): unknown {
  const found = getJsonPath(value, path);
  return found === MISSING ? undefined : found;
}

/** A JSON object (not null, not an array). */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** One key of a value that may not be an object. */
export function jsonField(value: unknown, key: string): unknown {
  return value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[key] : undefined;
}
