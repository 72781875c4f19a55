// stack.smoke: the data path between services. Remember a marked item through SomaBrain, then
// find that memory in SomaFractalMemory (GET /memories/{coord} with SomaBrain's coordinate: gen1
// our sentinel, gen2 the one it returned) and remove it there. Proves that SomaBrain really
// writes into SFM, which no health route can show. Cleanup removes it from SFM whatever happened.
import * as v from 'valibot';
import { httpService } from '../src/config/schema.js';
import { maskCredentials } from '../src/redact.js';
import { defineScenario, expectStatus, fail, objectBody, step } from '../src/scenario/scenario.js';
import { generationOf, generationStep, headersFor, rememberStep, removeFromSfm, sfmCleanupStep } from '../src/scenario/somastack-steps.js';
import { GEN2_TTL_SECONDS, SFM_ROUTES, sentinelCoord } from '../src/stack/memory.js';

export default defineScenario({
  kind: 'stack.smoke',
  options: v.strictObject({ somabrain: httpService, sfm: httpService }),
  target: (o) => `${maskCredentials(o.somabrain.url)} -> ${maskCredentials(o.sfm.url)}`,
  requestTimeoutMs: (o) => Math.max(o.somabrain.timeout ?? 0, o.sfm.timeout ?? 0) || undefined,
  runbook(o, run) {
    const { somabrain: brain, sfm } = o;
    const marker = run.marker();
    run.details.marker = marker;
    const remember = rememberStep(run, brain, marker, sentinelCoord());
    let removed = false;
    let found = false; // seen in SFM: the asynchronous write has landed
    return {
      steps: [
        generationStep(run, 'somabrain', brain),
        generationStep(run, 'sfm', sfm),
        remember,
        step(
          'find the memory in SFM at its coordinate',
          async (s) => {
            const coord = remember.coord();
            if (!coord) fail('SomaBrain returned no coordinate');
            const res = await s.http({ url: new URL(SFM_ROUTES.memory(coord), sfm.url).href, headers: headersFor(sfm.token), tls: sfm.tls });
            expectStatus(res, [200], 'SFM GET /memories/{coord}', { absentIs404: true });
            // SomaBrain decides how it nests the item in SFM's payload: look for the marker anywhere.
            if (!JSON.stringify(objectBody(res, 'SFM GET /memories/{coord}').memory ?? null).includes(marker))
              fail('SFM holds a memory at the coordinate, but not the one remembered (no marker)');
            found = true;
            return 'SFM holds the remembered item';
          },
          { retryForMs: 15_000 },
        ),
        step('remove it from SFM', async (s) => {
          const said = await removeFromSfm(s, sfm, remember.coord()!);
          removed = true;
          return said;
        }),
      ],
      cleanup: [
        sfmCleanupStep('remove the memory from SFM', sfm, () => remember.coord(), {
          written: () => remember.sent(),
          removed: () => removed,
          mayLandLater: () => !found,
          late: () =>
            generationOf(run, 'somabrain') === 'gen2'
              ? { stays: false, note: `it expires after ttl_seconds=${GEN2_TTL_SECONDS}` }
              : { stays: true, note: `if it lands later, it is the memory marked ${marker} at the sentinel coord` },
        }),
      ],
      summary: () => 'a memory remembered through SomaBrain was found in SFM and removed there',
    };
  },
});
