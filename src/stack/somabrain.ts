// SomaBrain, the cognitive API (contracts section 2).
import type { HttpServiceModel } from './spec.js';
import { healthSpec, metricsSpec } from './spec.js';
import { DETECT } from './generation.js';

const SFM_DOWN = 'memory backend (SomaFractalMemory) unreachable from SomaBrain';

export const somabrain: HttpServiceModel = {
  name: 'somabrain',
  checks(config, source) {
    // gen2's /health runs each inner check with a 3 s timeout: give it up to 30 s.
    const healthTimeout = config.timeout ?? (config.generation === 'gen1' ? undefined : 30_000);
    const health = healthSpec(
      'somabrain',
      config,
      source,
      {
        detect: DETECT.somabrain,
        variants: {
          gen1: {
            path: '/health',
            auth: false,
            // gen1 sets ok and ready false whatever happens: judge memory_ok and components.
            ignore: ['ok', 'ready'],
            require: { memory_ok: SFM_DOWN },
            warnIfFalse: { embedder_ok: 'embedder not ready', predictor_ok: 'predictor not ready' },
            statusMeaning: { '403': 'OPA unreachable: the gen1 OPA middleware denies every route, /health too' },
            expectJson: true,
          },
          gen2: {
            path: '/health',
            auth: false,
            statusMeaning: { '400': 'Host header not in SomaBrain ALLOWED_HOSTS' },
            // As gen1's memory_ok: without its memory store SomaBrain cannot remember, degraded or not.
            critical: { soma_fractal_memory: SFM_DOWN },
            expectJson: true,
          },
        },
      },
      healthTimeout,
    );
    if (!config.metrics) return [health];
    return [
      health,
      metricsSpec('somabrain', config, source, {
        // gen2 first: its static stub (`somabrain_up 1`, proving only that the process answers)
        // may also carry zeroed gen1-looking counters; gen1 has no somabrain_up.
        gen2: [{ name: 'somabrain_up', value: { op: '==', value: 1 } }],
        gen1: [{ name: 'somabrain_http_requests_total' }],
      }),
    ];
  },
};
