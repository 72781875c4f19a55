// How each SomaStack HTTP service's generation is told apart, for the health checks and the smoke
// scenarios alike: the probes (which route, what answer) and the one matching rule. The scenarios
// first take the generation their service's health check already found (details.generation), and
// probe only when that check is not in the plan.
import { fetchHttp, type HttpResponse } from '../clients/http.js';

export type Generation = 'gen1' | 'gen2';

export interface DetectRule {
  generation: string;
  path: string;
  auth?: boolean;
  status: number[];
  /** The JSON body must have at least one of these top-level keys. */
  anyKey?: string[];
}

export const DETECT: Record<'somabrain' | 'sfm' | 'gateway', DetectRule[]> = {
  // Both generations answer GET /health: one request tells them apart and is judged.
  somabrain: [
    { generation: 'gen2', path: '/health', status: [200], anyKey: ['infrastructure', 'internal_services'] },
    { generation: 'gen1', path: '/health', status: [200, 403] },
  ],
  // gen2 guards /health with the bearer token; gen1 answers it openly with the booleans.
  sfm: [
    { generation: 'gen2', path: '/health', status: [401] },
    { generation: 'gen1', path: '/health', status: [200], anyKey: ['kv_store'] },
  ],
  // gen2's aggregated route may want the token (sent when configured); gen1 has no /api/v2 routes
  // at all (404), so a 401 or 403 there is gen2 too.
  gateway: [
    { generation: 'gen2', path: '/api/v2/core/health', auth: true, status: [200], anyKey: ['status'] },
    { generation: 'gen2', path: '/api/v2/core/health', auth: true, status: [401, 403] },
    { generation: 'gen1', path: '/healthz', status: [200], anyKey: ['status', 'components'] },
  ],
};

/** The first rule (in order) that the answer to its probe matches; undefined when none does. */
export function matchGeneration(rules: DetectRule[], answers: Array<Pick<HttpResponse, 'status' | 'json'> | undefined>): string | undefined {
  for (const [i, rule] of rules.entries()) {
    const res = answers[i];
    if (!res) continue;
    const body = res.json;
    const keysOk =
      !rule.anyKey ||
      (typeof body === 'object' && body !== null && !Array.isArray(body) && rule.anyKey.some((k) => Object.prototype.hasOwnProperty.call(body, k)));
    if (rule.status.includes(res.status) && keysOk) return rule.generation;
  }
  return undefined;
}

export interface ServiceAddress {
  url: string;
  token?: string;
  tls?: { caFile?: string; insecure?: boolean };
}

// One detection per service per run, whoever asks first (the three scenarios share it).
const detected = new Map<string, Promise<Generation>>();

/** Probe a service's generation with its rules; rejects with a message a person can act on. */
export function detectGeneration(
  service: keyof typeof DETECT,
  address: ServiceAddress,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<Generation> {
  const key = `${service} ${address.url}`;
  let pending = detected.get(key);
  if (!pending) {
    pending = probe(service, address, timeoutMs, signal);
    detected.set(key, pending);
    pending.catch(() => detected.delete(key)); // a failed probe may be retried by the next asker
  }
  return pending;
}

async function probe(service: keyof typeof DETECT, address: ServiceAddress, timeoutMs: number, signal?: AbortSignal): Promise<Generation> {
  const rules = DETECT[service];
  const paths = [...new Set(rules.map((r) => `${r.auth && address.token ? 'auth ' : ''}${r.path}`))];
  const settled = await Promise.allSettled(
    paths.map((p) => {
      const auth = p.startsWith('auth ');
      const headers: Record<string, string> = { accept: 'application/json' };
      if (auth) headers.authorization = `Bearer ${address.token}`;
      return fetchHttp({ url: new URL(p.replace(/^auth /, ''), address.url).href, headers, timeoutMs, signal, tls: address.tls });
    }),
  );
  const byPath = new Map(paths.map((p, i) => [p, settled[i]!]));
  const answers = rules.map((r) => {
    const s = byPath.get(`${r.auth && address.token ? 'auth ' : ''}${r.path}`)!;
    return s.status === 'fulfilled' ? s.value : undefined;
  });
  const generation = matchGeneration(rules, answers);
  if (generation === 'gen1' || generation === 'gen2') return generation;
  const failure = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failure && settled.every((s) => s.status === 'rejected')) throw new Error((failure.reason as Error).message);
  const seen = paths.map((p, i) => `${p} ${settled[i]!.status === 'fulfilled' ? (settled[i] as PromiseFulfilledResult<HttpResponse>).value.status : 'no answer'}`);
  throw new Error(`cannot tell the ${service} generation: ${seen.join(', ')}; set generation: gen1 or gen2`);
}
