// The memory routes of SomaFractalMemory and SomaBrain, per generation (contracts sections 1 and
// 2): where to write, read, search and delete, and how each generation shapes what it answers.
// The smoke scenarios use these; nothing else writes.
import { randomInt } from 'node:crypto';
import type { Generation } from './generation.js';

export const SFM_ROUTES = {
  write: '/memories',
  search: '/memories/search',
  stats: '/stats',
  /** GET and DELETE. */
  memory: (coord: string) => `/memories/${coord}`,
};

export const SOMABRAIN_ROUTES = {
  gen1: { remember: '/remember', recall: '/recall', delete: '/delete' as string | undefined },
  // gen2 has no delete route: clean up through SFM with the returned coordinate.
  gen2: { remember: '/memory/remember', recall: '/memory/recall', delete: undefined as string | undefined },
} satisfies Record<Generation, unknown>;

/** How long a gen2 remember asks SomaBrain to keep the item if every cleanup path fails. */
export const GEN2_TTL_SECONDS = 600;

/** gen2 recall layers that are working memory (it returns every item of the tenant). */
export const WORKING_MEMORY_LAYERS = new Set(['wm', 'working', 'working_memory', 'short_term']);

/**
 * A sentinel coordinate nobody else uses: three numbers far from where SomaStack puts memories,
 * random per call, so two runs at once never write to one coordinate.
 */
export function sentinelCoord(): string {
  const one = () => `${randomInt(0, 2) ? '-' : ''}${randomInt(7000, 9000)}.${String(randomInt(0, 1_000_000)).padStart(6, '0')}`;
  return [one(), one(), one()].join(',');
}

/** The coordinate list a gen1 SomaBrain /delete takes. */
export function coordinateList(coord: string): number[] {
  return coord.split(',').map(Number);
}

/** The payload of a memory as SFM answers it: gen1 a flat dict, gen2 `{ payload: {...} }`. */
export function sfmPayload(memory: unknown, generation: Generation): Record<string, unknown> | undefined {
  if (!isObject(memory)) return undefined;
  if (generation === 'gen1') return memory;
  return isObject(memory.payload) ? memory.payload : undefined;
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
