// The smoke scenarios: one line each. A scenario runs when smoke is on and every service it uses
// is configured; its row depends on those services' health checks.
import type { CheckKind } from '../check.js';

/** The default budget of a scenario: long enough for its bounded retries. */
export const SCENARIO_TIMEOUT_MS = 30_000;

export interface ScenarioEntry {
  id: string;
  /** The services it talks to; its options are their configs under these names. */
  services: Array<'sfm' | 'somabrain'>;
  /** Services it uses when they are configured (SomaBrain gen2 cleans up through SFM). */
  optional?: Array<'sfm' | 'somabrain'>;
  load: () => Promise<{ default: CheckKind }>;
}

export const SCENARIOS: ScenarioEntry[] = [
  { id: 'sfm.smoke', services: ['sfm'], load: () => import('../../scenarios/sfm.js') },
  { id: 'somabrain.smoke', services: ['somabrain'], optional: ['sfm'], load: () => import('../../scenarios/somabrain.js') },
  { id: 'stack.smoke', services: ['somabrain', 'sfm'], load: () => import('../../scenarios/stack.js') },
];
