// SomaFractalMemory, the memory store (contracts section 1).
import type { HttpServiceModel } from './spec.js';
import { httpBase } from './spec.js';

const STORES = {
  kv_store: 'Postgres or Redis unreachable from SFM',
  vector_store: 'Qdrant unreachable from SFM',
  graph_store: 'in-process graph store down',
};

export const sfm: HttpServiceModel = {
  name: 'sfm',
  title: 'SomaFractalMemory',
  checks(config, source) {
    const health = {
      id: 'sfm.health',
      kind: 'health',
      service: 'sfm',
      source,
      timeoutMs: config.timeout,
      options: {
        ...httpBase(config),
        generation: config.generation,
        // gen2 guards /health with the bearer token; gen1 answers it openly with the booleans.
        detect: [
          { generation: 'gen2', path: '/health', status: [401] },
          { generation: 'gen1', path: '/health', status: [200], anyKey: ['kv_store'] },
        ],
        variants: {
          // gen1 /healthz is always 200: the booleans are the verdict.
          gen1: { path: '/healthz', auth: false, componentMeaning: STORES },
          // gen2 /health (token) names each backend; without a token /readyz still has booleans.
          gen2: config.token
            ? {
                path: '/health',
                auth: true,
                statusMeaning: { '401': 'token rejected: check SOMA_API_TOKEN' },
                componentPaths: ['services'],
              }
            : { path: '/readyz', auth: false, componentMeaning: STORES },
        },
      },
    };
    if (!config.metrics) return [health];
    const gen1 = [{ name: 'api_requests_total' }];
    const gen2 = [{ name: 'process_start_time_seconds' }];
    const series =
      config.generation === 'gen1' ? { series: gen1 }
      : config.generation === 'gen2' ? { series: gen2 }
      : { anyOf: [{ name: 'gen1', series: gen1 }, { name: 'gen2', series: gen2 }] };
    return [
      health,
      {
        id: 'sfm.metrics',
        kind: 'metrics',
        service: 'sfm',
        source,
        timeoutMs: config.timeout,
        dependsOn: ['sfm.health'],
        options: { url: new URL('/metrics', config.url).href, token: config.token, tls: config.tls, ...series },
      },
    ];
  },
};
