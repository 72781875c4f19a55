// The generic vocabulary of health bodies, shared by every service's health check: the words a
// service uses for its own state, and the component lists and maps it nests them in.
import type { Status } from './check.js';
import { isJsonObject } from './conditions.js';
import { excerpt } from './redact.js';

export const WORDS: Record<string, Exclude<Status, 'skip'>> = {
  ok: 'pass', healthy: 'pass', ready: 'pass', up: 'pass', pass: 'pass', passed: 'pass',
  green: 'pass', alive: 'pass', live: 'pass', serving: 'pass',
  degraded: 'warn', warn: 'warn', warning: 'warn', yellow: 'warn', partial: 'warn',
  down: 'fail', critical: 'fail', unhealthy: 'fail', not_ready: 'fail', fail: 'fail',
  failed: 'fail', error: 'fail', red: 'fail', unavailable: 'fail', dead: 'fail',
};

export interface Verdict {
  status: Exclude<Status, 'skip'>;
  message: string;
  details: Record<string, unknown>;
}

const RANK = { pass: 0, warn: 1, fail: 2 } as const;
export const worse = (a: Verdict['status'], b: Verdict['status']) => (RANK[a] >= RANK[b] ? a : b);

/** Words that turn the next one around: "not ok", "no healthy backend". */
const NEGATIONS = new Set(['not', 'no', 'non', 'never', 'cannot', 'isn_t', 'isnt']);

export function judgeText(text: string, path: string): Verdict {
  const words = text.toLowerCase().replace(/'/g, '_').match(/[a-z_]+/g) ?? [];
  // A negated good word is a failure; a negated bad one says nothing ("no errors" is no verdict).
  const verdicts = words
    .map((w, i) => (NEGATIONS.has(words[i - 1] ?? '') ? (WORDS[w] === 'pass' ? 'fail' : undefined) : WORDS[w]))
    .filter((v): v is Verdict['status'] => !!v);
  const snippet = excerpt(text.trim(), 80);
  if (verdicts.length === 0)
    return { status: 'warn', message: `body of ${path} is not JSON and says nothing about health`, details: { body: snippet } };
  const status = verdicts.reduce(worse, 'pass');
  return { status, message: `"${snippet}"`, details: { body: snippet } };
}

interface Component {
  name: string;
  word: string;
  verdict: Verdict['status'];
  summary: Record<string, unknown>;
}

/** Components as a map { name: {status...} } or a list [{ name, status... }]. */
export function componentsAt(value: unknown): Component[] {
  const list: Array<[string, unknown]> = Array.isArray(value)
    ? value.map((v, i) => [isJsonObject(v) && typeof v.name === 'string' ? v.name : `#${i}`, v])
    : isJsonObject(value)
      ? Object.entries(value)
      : [];
  const out: Component[] = [];
  for (const [name, raw] of list) {
    if (typeof raw === 'boolean') {
      out.push({ name, word: raw ? 'ok' : 'false', verdict: raw ? 'pass' : 'fail', summary: { ok: raw } });
      continue;
    }
    if (!isJsonObject(raw)) continue;
    let verdict: Verdict['status'] = 'pass';
    let word = '';
    if (typeof raw.status === 'string') {
      word = raw.status;
      verdict = WORDS[raw.status.toLowerCase()] ?? 'warn';
    }
    for (const key of ['healthy', 'ok', 'http', 'ready']) {
      if (raw[key] === false) {
        verdict = 'fail';
        word ||= `${key}=false`;
      }
    }
    if (!word && !['healthy', 'ok', 'http', 'ready'].some((k) => typeof raw[k] === 'boolean')) continue;
    const latency = raw.latency_ms ?? raw.response_time_ms ?? raw.latencyMs;
    const summary: Record<string, unknown> = { status: word || 'ok' };
    if (typeof latency === 'number') summary.latencyMs = latency;
    const said = raw.detail ?? raw.message ?? raw.error;
    if (typeof said === 'string' && said) {
      summary.detail = excerpt(said, 200);
      if (verdict !== 'pass') word = `${word || 'failing'} (${excerpt(said, 120)})`;
    }
    out.push({ name, word: word || 'ok', verdict, summary });
  }
  return out;
}

export function summarize(body: Record<string, unknown>): string {
  const text = JSON.stringify(body);
  return excerpt(text, 300);
}

