// Steps more than one SomaStack scenario runs: telling a service's generation, remembering a
// marked item through SomaBrain, and removing a memory from SFM (then proving it is gone).
import type { HttpServiceConfig } from '../config/schema.js';
import { detectGeneration, type Generation } from '../stack/generation.js';
import { GEN2_TTL_SECONDS, SFM_ROUTES, SOMABRAIN_ROUTES, WORKING_MEMORY_LAYERS, isObject } from '../stack/memory.js';
import { CLEANUP_BUDGET_MS, expectStatus, fail, objectBody, step, type ScenarioRun, type Step, type StepSpec } from './scenario.js';
import type { HttpResponse } from '../clients/http.js';

type Service = 'sfm' | 'somabrain';

/** The service's generation: configured, else what its health check found, else probed once. */
export function generationStep(run: ScenarioRun, service: Service, config: HttpServiceConfig): StepSpec {
  return step(`tell the ${service} generation`, async (s) => {
    const known = (run.details.generation ??= {}) as Record<string, Generation>;
    if (config.generation !== 'auto') {
      known[service] = config.generation;
      return `${config.generation} (configured)`;
    }
    const found = run.dependency(`${service}.health`)?.details.generation;
    if (found === 'gen1' || found === 'gen2') {
      known[service] = found;
      return `${found} (detected by ${service}.health)`;
    }
    try {
      known[service] = await detectGeneration(service, config, run.requestTimeoutMs, s.signal);
    } catch (err) {
      fail((err as Error).message);
    }
    return `${known[service]} (detected)`;
  });
}

export function generationOf(run: ScenarioRun, service: Service): Generation {
  const g = (run.details.generation as Record<string, Generation> | undefined)?.[service];
  if (!g) fail(`the ${service} generation is unknown`);
  return g;
}

/** Headers with the bearer token (none when `token` is null or unset) and a tenant. */
export function headersFor(token: string | null | undefined, tenant?: string): Record<string, string> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (tenant) headers['x-tenant-id'] = tenant;
  return headers;
}

/** What a 401 or 403 from a service means, given whether a token was sent. */
export function authMeaning(service: Service, token: string | undefined): Record<number, string> {
  const variable = service === 'sfm' ? 'SOMA_API_TOKEN' : 'SOMABRAIN_API_TOKEN';
  return token
    ? { 401: `token refused: check ${variable}`, 403: `token refused: check ${variable}` }
    : { 401: `no token configured: set the ${service} token (${variable})`, 403: `no token configured: set the ${service} token (${variable})` };
}

/** The tenant a scenario remembers under; X-Tenant-ID always equals it. */
export const SMOKE_TENANT = 'public';

export interface Remembered {
  /** The memory's coordinate in SFM, as `x,y,z`, once known. */
  coord(): string | undefined;
  /** Whether a remember request was sent (so cleanup has something to look for). */
  sent(): boolean;
}

/**
 * Remember a uniquely marked item through SomaBrain. gen1 stores it at our sentinel `coord`;
 * gen2 picks a coordinate and returns it (captured: it is the service's value). A 200 that says the
 * write was only queued (`queued`, `breaker_open`, `coordinate: null`) fails: the long-term store
 * did not take it.
 */
export function rememberStep(run: ScenarioRun, brain: HttpServiceConfig, marker: string, sentinel: string): StepSpec & Remembered {
  let sent = false;
  const spec = step('remember a marked item through SomaBrain', async (s) => {
    const gen = generationOf(run, 'somabrain');
    const route = SOMABRAIN_ROUTES[gen].remember;
    const item = { task: marker, content: marker, marker, source: 'soma-verify smoke' };
    const json =
      gen === 'gen1'
        ? { coord: sentinel, payload: { ...item, memory_type: 'episodic' } }
        : { tenant: SMOKE_TENANT, namespace: marker, key: marker, value: item, ttl_seconds: GEN2_TTL_SECONDS };
    sent = true;
    const res = await s.http({ url: new URL(route, brain.url).href, method: 'POST', headers: headersFor(brain.token, SMOKE_TENANT), json, tls: brain.tls });
    // Plainly refused (4xx): nothing was written, nothing to clean.
    if (res.status >= 400 && res.status < 500) sent = false;
    await explainBrainDenial(s, res, brain, `POST ${route}`);
    expectStatus(res, [200], `POST ${route}`);
    const body = objectBody(res, `POST ${route}`);
    if (gen === 'gen1') {
      if (body.breaker_open === true || body.queued === true)
        fail(`POST /remember answered 200 but queued the item for replay (breaker_open: ${body.breaker_open}, queued: ${body.queued}): the memory backend did not take it`);
      if (body.ok === false || body.success === false) fail(`POST /remember answered 200 with ok: ${body.ok}, success: ${body.success}`);
      return `remembered at the sentinel coord ${sentinel}`;
    }
    const coordinate = body.coordinate;
    if (coordinate === null || coordinate === undefined)
      fail(`POST ${route} answered 200 with coordinate: null: the long-term write was not confirmed (queued at best); the item expires after ttl_seconds=${GEN2_TTL_SECONDS}`);
    if (!Array.isArray(coordinate) || coordinate.length !== 3 || !coordinate.every((n) => typeof n === 'number'))
      fail(`POST ${route} answered a coordinate that is not three numbers`);
    run.capture('coordinate', (coordinate as number[]).join(','));
    if (body.ok === false) fail(`POST ${route} answered 200 with ok: false`);
    return 'remembered; SomaBrain returned its coordinate';
  });
  return Object.assign(spec, {
    sent: () => sent,
    coord: () => (run.get<string>('coordinate') ?? (sent && generationOf(run, 'somabrain') === 'gen1' ? sentinel : undefined)),
  });
}

/**
 * A 403 from SomaBrain gen1 on every route, /health too, is its OPA middleware failing closed:
 * say so rather than blame the token.
 */
export async function explainBrainDenial(s: Step, res: HttpResponse, brain: HttpServiceConfig, what: string): Promise<void> {
  if (res.status !== 401 && res.status !== 403) return;
  if (res.status === 403) {
    const health = await s.http({ url: new URL('/health', brain.url).href, headers: headersFor(null), tls: brain.tls }).catch(() => undefined);
    if (health?.status === 403)
      fail(`${what} answered 403 and so does /health: OPA is unreachable (the gen1 OPA middleware denies every route), not a token problem`);
  }
  expectStatus(res, [200], what, { meaning: authMeaning('somabrain', brain.token) });
}

/**
 * DELETE a memory from SFM, then GET it: it must answer 404. gen1 may answer 500 after deleting
 * (its vector delete is broken): a 500 is accepted only when the GET that follows is 404. gen2
 * deletes softly; its GET still answers 404.
 */
export async function removeFromSfm(s: Step, sfm: HttpServiceConfig, coord: string): Promise<string> {
  const url = new URL(SFM_ROUTES.memory(coord), sfm.url).href;
  const res = await s.http({ url, method: 'DELETE', headers: headersFor(sfm.token), tls: sfm.tls });
  let said = '';
  if (res.status === 500) said = 'DELETE answered 500 (the gen1 vector-delete fault) and ';
  else {
    expectStatus(res, [200, 404], `DELETE /memories/{coord}`, { meaning: authMeaning('sfm', sfm.token) });
    const body = res.status === 200 ? objectBody(res, 'DELETE /memories/{coord}') : {};
    said = res.status === 404 ? 'DELETE found nothing and ' : body.deleted === false ? 'DELETE answered deleted: false and ' : '';
  }
  const after = await s.http({ url, headers: headersFor(sfm.token), tls: sfm.tls });
  if (after.status === 404) return `${said}GET answers 404: removed`;
  if (after.status === 200) fail(`${said}GET still answers 200: the memory is still there`);
  expectStatus(after, [404], 'GET /memories/{coord} after DELETE');
  return said;
}

export interface CleanupState {
  written(): boolean;
  removed(): boolean;
  /** A write may still be on its way: SomaBrain's asynchronous write, or a request cut before its answer. */
  mayLandLater?(): boolean;
  /** What becomes of a write that did not land in time: it expires (gen2's ttl, the default) or stays once it lands. */
  late?(): LateWrite;
}

/** A write that had not landed when cleanup ended: a warning when it expires, a failed cleanup when it stays. */
export interface LateWrite {
  stays: boolean;
  note: string;
}

const EXPIRES: LateWrite = { stays: false, note: `it expires after ttl_seconds=${GEN2_TTL_SECONDS}` };

/** Report a write that had not landed when cleanup ended (`where`: where it was looked for). */
export function lateWrite(s: Step, where: string, late: LateWrite = EXPIRES): void {
  const said = `the write had not reached ${where} when cleanup ended: ${late.note}`;
  if (late.stays) fail(said);
  s.warn(said);
}

/** A cleanup step that removes `coord()` from SFM unless nothing was written or it is gone. */
export function sfmCleanupStep(name: string, sfm: HttpServiceConfig | undefined, coord: () => string | undefined, state: CleanupState): StepSpec {
  return step(name, async (s) => {
    if (!state.written()) return s.skip('nothing was written');
    if (state.removed()) return s.skip('already removed by the steps above');
    const at = coord();
    if (!at) return s.warn(`the coordinate was never returned: the item expires after ttl_seconds=${GEN2_TTL_SECONDS}`);
    if (!sfm) return s.warn(`no SFM configured to delete it: the item expires after ttl_seconds=${GEN2_TTL_SECONDS}`);
    // A write still on its way would land after a delete: wait for it. Delete in any case (it
    // may be there unseen), then say what may still land.
    const url = new URL(SFM_ROUTES.memory(at), sfm.url).href;
    const landed = !state.mayLandLater?.() || (await waitForLanding(s, async () => (await s.http({ url, headers: headersFor(sfm.token), tls: sfm.tls })).status === 200));
    const said = await removeFromSfm(s, sfm, at);
    if (!landed) lateWrite(s, 'SFM', state.late?.());
    return said;
  }, { retryForMs: 4000 });
}

/** How long cleanup waits for a write on its way: the rest of its budget is for removing it and saying so. */
const LANDING_WAIT_MS = CLEANUP_BUDGET_MS - 1500;

/** Ask `landed` every 200 ms until it says yes, for at most LANDING_WAIT_MS; a failed ask is a no. */
export async function waitForLanding(s: Step, landed: () => Promise<boolean>): Promise<boolean> {
  const until = performance.now() + LANDING_WAIT_MS;
  while (!s.signal.aborted && performance.now() < until) {
    if (await landed().catch(() => false)) return true;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return false;
}

/** The items of a recall answer that hold `marker`, split into long-term and working memory. */
export function recalled(body: Record<string, unknown>, gen: Generation, marker: string): { longTerm: unknown[]; working: unknown[] } {
  const holds = (item: unknown) => JSON.stringify(item ?? null).includes(marker);
  const list = (v: unknown) => (Array.isArray(v) ? v : []);
  if (gen === 'gen1') return { longTerm: list(body.memory).filter(holds), working: list(body.wm).filter(holds) };
  const results = list(body.results).filter(holds);
  const layer = (item: unknown) => (isObject(item) && typeof item.layer === 'string' ? item.layer.toLowerCase() : '');
  const working = (r: unknown) => WORKING_MEMORY_LAYERS.has(layer(r));
  return { longTerm: results.filter((r) => !working(r)), working: results.filter(working) };
}
