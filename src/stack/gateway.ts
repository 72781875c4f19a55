// The SomaAgent01 gateway (contracts section 3).
import type { HttpServiceModel } from './spec.js';
import { healthSpec } from './spec.js';
import { DETECT } from './generation.js';

export const gateway: HttpServiceModel = {
  name: 'gateway',
  checks(config, source) {
    return [
      healthSpec('gateway', config, source, {
        detect: DETECT.gateway,
        variants: {
          // gen1 /healthz adds somabrain_http to postgres, redis and kafka.
          gen1: { path: '/healthz', auth: false, expectJson: true },
          // gen2's /health/ is static; the aggregated dependency checks live here.
          gen2: { path: '/api/v2/core/health', auth: true, expectJson: true },
        },
      }),
    ];
  },
};
