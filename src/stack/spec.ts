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
  title: string;
  checks(config: HttpServiceConfig, source: string): CheckSpec[];
}

/** Options shared by every check against an HTTP service. */
export function httpBase(config: HttpServiceConfig) {
  return { url: config.url, token: config.token, tls: config.tls };
}
