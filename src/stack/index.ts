// What SomaStack is, for the planner: each service and the checks it needs. The user says where
// things are; this module knows what to verify there.
import type { EnvironmentConfig, StoreServiceConfig } from '../config/schema.js';
import type { CheckSpec, HttpServiceModel } from './spec.js';
import { somabrain } from './somabrain.js';
import { sfm } from './sfm.js';
import { gateway } from './gateway.js';
import { withRequirements } from './requirements.js';
import { SCENARIOS, SCENARIO_TIMEOUT_MS } from '../scenario/registry.js';

export type { CheckSpec } from './spec.js';

const HTTP_SERVICES: HttpServiceModel[] = [somabrain, sfm, gateway];

/** Backing stores: each is checked by the check kind of its own name. */
const STORES = ['postgres', 'redis', 'kafka', 'qdrant', 'opa'] as const;

/** SomaStack's shipped policies deny by default (seed 003's production checklist). */

export interface PlanChoices {
  /** Run the smoke scenarios (they write, and remove, their own marked data). */
  smoke?: boolean;
}

export function specsForEnvironment(env: EnvironmentConfig, envName: string, choices: PlanChoices = {}): CheckSpec[] {
  const base = `environments.${envName}`;
  const specs: CheckSpec[] = [];
  for (const model of HTTP_SERVICES) {
    const config = env.services[model.name];
    if (config) specs.push(...model.checks(config, `${base}.services.${model.name}`));
  }
  for (const store of STORES) {
    const config = env.services[store];
    if (config) specs.push(storeSpec(store, config, `${base}.services.${store}`));
  }
  if (choices.smoke) specs.push(...scenarioSpecs(env, base));
  for (const [i, check] of env.checks.entries()) {
    const { id, kind, service, dependsOn, timeout, ...options } = check;
    // A custom check of a scenario kind writes: it too runs only with smoke on.
    if (!choices.smoke && SCENARIOS.some((s) => s.id === kind)) continue;
    specs.push({ id, kind, service, dependsOn, timeoutMs: timeout, options, source: `${base}.checks[${i}]` });
  }
  return specs;
}

function storeSpec(store: (typeof STORES)[number], config: StoreServiceConfig, source: string): CheckSpec {
  const { timeout, requiredBy = [], ...given } = config;
  const options = withRequirements(store, given, requiredBy);
  return { id: store, kind: store, service: store, options, timeoutMs: timeout, source };
}

/** The scenarios whose services are all configured, each depending on their health checks. */
function scenarioSpecs(env: EnvironmentConfig, base: string): CheckSpec[] {
  const timeoutMs = typeof env.smoke === 'object' ? env.smoke.timeout : undefined;
  return SCENARIOS.filter((s) => s.services.every((name) => env.services[name])).map((s) => {
    const used = [...s.services, ...(s.optional ?? []).filter((name) => env.services[name])];
    return {
      id: s.id,
      kind: s.id,
      options: Object.fromEntries(used.map((name) => [name, env.services[name]])),
      timeoutMs: timeoutMs ?? SCENARIO_TIMEOUT_MS,
      dependsOn: used.map((name) => `${name}.health`),
      source: `${base}.smoke (${s.id})`,
    };
  });
}
