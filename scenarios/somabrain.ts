// somabrain.smoke: SomaBrain remembers and recalls. Remember a marked item, recall it with the
// marker as the query until its long-term store answers it (writes can be asynchronous; a hit
// only in working memory, which on gen2 returns every item of the tenant, proves nothing), then
// forget it: gen1 through POST /delete at our sentinel coord, gen2 through SFM with the returned
// coordinate. Cleanup does the same whatever happened.
import * as v from 'valibot';
import { httpService } from '../src/config/schema.js';
import { maskCredentials } from '../src/redact.js';
import { defineScenario, expectStatus, fail, notYet, objectBody, step, type Step } from '../src/scenario/scenario.js';
import {
  explainBrainDenial,
  generationOf,
  generationStep,
  headersFor,
  lateWrite,
  recalled,
  rememberStep,
  removeFromSfm,
  sfmCleanupStep,
  SMOKE_TENANT,
  waitForLanding,
} from '../src/scenario/somastack-steps.js';
import { coordinateList, GEN2_TTL_SECONDS, SOMABRAIN_ROUTES, sentinelCoord } from '../src/stack/memory.js';

export default defineScenario({
  kind: 'somabrain.smoke',
  options: v.strictObject({ somabrain: httpService, sfm: v.optional(httpService) }),
  target: (o) => maskCredentials(o.somabrain.url),
  requestTimeoutMs: (o) => o.somabrain.timeout,
  runbook(o, run) {
    const brain = o.somabrain;
    const marker = run.marker();
    const sentinel = sentinelCoord();
    run.details.marker = marker;
    const remember = rememberStep(run, brain, marker, sentinel);
    let removed = false;

    const recall = async (s: Step) => {
      const gen = generationOf(run, 'somabrain');
      const route = SOMABRAIN_ROUTES[gen].recall;
      const json = gen === 'gen1' ? { query: marker, top_k: 10 } : { query: marker, top_k: 10, tenant: SMOKE_TENANT, namespace: marker };
      const res = await s.http({ url: new URL(route, brain.url).href, method: 'POST', headers: headersFor(brain.token, SMOKE_TENANT), json, tls: brain.tls });
      await explainBrainDenial(s, res, brain, `POST ${route}`);
      expectStatus(res, [200], `POST ${route}`);
      const body = objectBody(res, `POST ${route}`);
      return { body, ...recalled(body, gen, marker) };
    };

    /** gen1 forgets through SomaBrain; gen2 has no delete route and forgets through SFM. */
    const forget = async (s: Step): Promise<string> => {
      if (generationOf(run, 'somabrain') === 'gen1') {
        const res = await s.http({
          url: new URL(SOMABRAIN_ROUTES.gen1.delete!, brain.url).href,
          method: 'POST',
          headers: headersFor(brain.token, SMOKE_TENANT),
          json: { coordinate: coordinateList(sentinel) },
          tls: brain.tls,
        });
        expectStatus(res, [200], 'POST /delete');
        if (objectBody(res, 'POST /delete').ok !== true) fail('POST /delete answered 200 without ok: true');
        return 'POST /delete answered ok';
      }
      const coord = remember.coord();
      if (!coord) {
        s.warn(`SomaBrain never returned the coordinate: the item expires after ttl_seconds=${GEN2_TTL_SECONDS}`);
        return '';
      }
      if (!o.sfm) {
        s.warn(`gen2 has no delete route and no SFM is configured: the item expires after ttl_seconds=${GEN2_TTL_SECONDS}`);
        return '';
      }
      return removeFromSfm(s, o.sfm, coord);
    };
    let confirmed = false; // recalled from the long-term store: the write has landed
    const throughSfm = sfmCleanupStep('forget the item', o.sfm, () => remember.coord(), {
      written: () => remember.sent(),
      removed: () => removed,
      mayLandLater: () => !confirmed,
    });

    return {
      steps: [
        generationStep(run, 'somabrain', brain),
        remember,
        step(
          'recall it from the long-term store',
          async (s) => {
            const { body, longTerm, working } = await recall(s);
            if (longTerm.length) {
              confirmed = true;
              return 'recalled from the long-term store';
            }
            if (body.degraded === true) notYet('recall answered degraded: true without the item');
            if (working.length) notYet('recalled only from working memory: the long-term store has not answered it');
            notYet('the marked item is not recalled');
          },
          { retryForMs: 15_000 },
        ),
        step(
          'forget it',
          async (s) => {
            const said = await forget(s);
            removed = !!said;
            return said;
          },
          { retryForMs: 4000 },
        ),
        step(
          'it is no longer recalled',
          async (s) => {
            if (!removed) return s.skip('not forgotten: it expires after its ttl');
            const { longTerm } = await recall(s);
            if (longTerm.length) notYet('the long-term store still recalls the item');
            return 'the long-term store no longer recalls it';
          },
          { retryForMs: 5000 },
        ),
      ],
      // Once the write has landed: gen1 POST /delete at the sentinel coord; gen2 DELETE the
      // returned coordinate in SFM.
      cleanup: [
        step(
          'forget the item',
          async (s) => {
            if (!remember.sent()) return s.skip('nothing was written');
            if (removed) return s.skip('already forgotten by the steps above');
            if (generationOf(run, 'somabrain') === 'gen2') return throughSfm.run(s);
            // Forgotten before it lands (an asynchronous write, or a request cut before its
            // answer), the item would be stored after cleanup: wait until recall finds it. Forget
            // it in any case (it may be there unseen), then say what may still land.
            const landed = confirmed || (await waitForLanding(s, async () => (await recall(s)).longTerm.length > 0));
            const said = await forget(s);
            if (!landed) lateWrite(s, 'the long-term store', { stays: true, note: `if it lands later, it is the item marked ${marker} at the sentinel coord ${sentinel}` });
            return said;
          },
          { retryForMs: 4000 },
        ),
      ],
      summary: () => 'remembered a marked item, recalled it from the long-term store and forgot it',
    };
  },
});
