// SomaFractalMemory, the memory store (contracts section 1).
import type { HttpServiceModel } from './spec.js';
import { healthSpec, metricsSpec } from './spec.js';
import { DETECT } from './generation.js';

// What a false store boolean means: gen1 keeps vectors in Qdrant, gen2 in Milvus (no Qdrant).
const STORES = {
  gen1: { kv_store: 'Postgres or Redis unreachable from SFM', vector_store: 'Qdrant unreachable from SFM', graph_store: 'in-process graph store down' },
  gen2: { kv_store: 'Postgres or Redis unreachable from SFM', vector_store: 'Milvus unreachable from SFM', graph_store: 'in-process graph store down' },
};

export const sfm: HttpServiceModel = {
  name: 'sfm',
  checks(config, source) {
    const health = healthSpec('sfm', config, source, {
      detect: DETECT.sfm,
      // All three stores must be up (seed 002's checklist; gen2's own /healthz says 503 otherwise):
      // a missing or non-boolean store boolean fails, and on gen2's /health "degraded" does not
      // soften a service that is down.
      variants: {
        // gen1 /healthz is always 200: the booleans are the verdict.
        gen1: { path: '/healthz', auth: false, require: STORES.gen1, expectJson: true },
        // gen2 /health (token) names each backend; without a token /readyz still has booleans.
        gen2: config.token
          ? {
              path: '/health',
              auth: true,
              statusMeaning: { '401': 'token rejected: check SOMA_API_TOKEN' },
              componentPaths: ['services'],
              degradedIsWarn: false,
              expectJson: true,
            }
          : { path: '/readyz', auth: false, require: STORES.gen2, expectJson: true },
      },
    });
    if (!config.metrics) return [health];
    return [
      health,
      metricsSpec('sfm', config, source, {
        gen1: [{ name: 'api_requests_total' }],
        gen2: [{ name: 'process_start_time_seconds' }],
      }),
    ];
  },
};
