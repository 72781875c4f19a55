import type { HttpServiceConfig } from '../config/schema.js';

/** One check to run, before its kind has validated the options. */
export interface CheckSpec {
  id: string;
  kind: string;
  service?: string;
  options: unknown;
  timeoutMs?: number;
  dependsOn?: string[];
  /** Where the options came from in the config, to prefix validation errors. */
  source: string;
}

/** What the stack knows about one SomaStack HTTP service. */
export interface HttpServiceModel {
  name: 'somabrain' | 'sfm' | 'gateway';
  checks(config: HttpServiceConfig, source: string): CheckSpec[];
}

/** The service's body-aware health check: how to tell its generations apart, and each one's probe. */
export function healthSpec(
  service: HttpServiceModel['name'],
  config: HttpServiceConfig,
  source: string,
  probes: { detect: unknown[]; variants: Record<'gen1' | 'gen2', unknown> },
  timeoutMs = config.timeout,
): CheckSpec {
  return {
    id: `${service}.health`,
    kind: 'health',
    service,
    source,
    timeoutMs,
    options: { url: config.url, token: config.token, tls: config.tls, generation: config.generation, ...probes },
  };
}

type Series = Array<{ name: string; value?: { op: string; value: number } }>;

/**
 * The service's /metrics check: the series of its generation, or either generation's when it is
 * `auto` (the body tells which, trying them in the order given: the more specific set first, since
 * one generation's series may also appear in the other's). It depends on the service's health
 * check, so a service that is down shows one failure, not two.
 */
export function metricsSpec(
  service: HttpServiceModel['name'],
  config: HttpServiceConfig,
  source: string,
  series: Partial<Record<'gen1' | 'gen2', Series>>,
): CheckSpec {
  const expected =
    config.generation === 'auto'
      ? { anyOf: Object.entries(series).map(([name, set]) => ({ name, series: set })) }
      : { series: series[config.generation] ?? [] };
  return {
    id: `${service}.metrics`,
    kind: 'metrics',
    service,
    source,
    timeoutMs: config.timeout,
    dependsOn: [`${service}.health`],
    // With the generation unknown, the health check's detection (when it ran) picks the set.
    options: { url: new URL('/metrics', config.url).href, token: config.token, tls: config.tls, ...expected, ...(config.generation === 'auto' ? { anyOfBy: `${service}.health` } : {}) },
  };
}
