// Where check kinds come from: the built-in ones in checks/ (imported only when a plan uses
// them, so start-up stays fast) and the user's plugins named in the config.
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import type { CheckKind } from '../check.js';
import { ConfigError } from '../config/issues.js';
import { settleWithin } from './runner.js';
import { SCENARIOS } from '../scenario/registry.js';
import { importModule } from '../import-module.js';

type Loader = () => Promise<{ default: CheckKind }>;

const BUILT_IN: Record<string, Loader> = {
  http: () => import('../../checks/http.js'),
  health: () => import('../../checks/health.js'),
  metrics: () => import('../../checks/metrics.js'),
  tcp: () => import('../../checks/tcp.js'),
  postgres: () => import('../../checks/postgres.js'),
  redis: () => import('../../checks/redis.js'),
  kafka: () => import('../../checks/kafka.js'),
  qdrant: () => import('../../checks/qdrant.js'),
  opa: () => import('../../checks/opa.js'),
  // The smoke scenarios (scenarios/), planned only with --smoke.
  ...Object.fromEntries(SCENARIOS.map((s) => [s.id, s.load])),
};

export class KindRegistry {
  private readonly loaded = new Map<string, Promise<CheckKind>>();

  private constructor(private readonly plugins: Map<string, CheckKind>) {}

  /**
   * Load the plugins named in the config, relative to the config file's folder. A module whose
   * loading never settles (a top-level await that hangs) is refused after `loadTimeoutMs`.
   */
  static async create(pluginPaths: string[], baseDir: string, loadTimeoutMs = 5000): Promise<KindRegistry> {
    const plugins = new Map<string, CheckKind>();
    for (const [i, path] of pluginPaths.entries()) {
      const where = `plugins[${i}]`;
      let mod: { default?: unknown };
      try {
        const loaded = await settleWithin(() => importModule(pathToFileURL(resolve(baseDir, path)).href) as Promise<{ default?: unknown }>, loadTimeoutMs);
        if (!loaded.done) throw new ConfigError([`${where}: ${path} did not finish loading within ${loadTimeoutMs} ms`]);
        mod = loaded.value;
      } catch (err) {
        if (err instanceof ConfigError) throw err;
        throw new ConfigError([`${where}: cannot load ${path}: ${(err as Error).message.split('\n')[0]}`]);
      }
      const checkKind = kindOf(mod.default);
      if (typeof checkKind === 'string') throw new ConfigError([`${where}: ${path} ${checkKind}`]);
      // A plugin must not silently replace a built-in: the report would say "postgres" for a
      // check the user never reviewed.
      if (Object.hasOwn(BUILT_IN, checkKind.kind))
        throw new ConfigError([`${where}: ${path} defines kind "${checkKind.kind}", which is a built-in kind: give the plugin another name`]);
      if (plugins.has(checkKind.kind)) throw new ConfigError([`${where}: kind "${checkKind.kind}" is defined twice`]);
      plugins.set(checkKind.kind, checkKind);
    }
    return new KindRegistry(plugins);
  }

  names(): string[] {
    return [...Object.keys(BUILT_IN), ...this.plugins.keys()];
  }

  has(name: string): boolean {
    return this.plugins.has(name) || Object.hasOwn(BUILT_IN, name);
  }

  get(name: string): Promise<CheckKind> {
    const plugin = this.plugins.get(name);
    if (plugin) return Promise.resolve(plugin);
    const load = Object.hasOwn(BUILT_IN, name) ? BUILT_IN[name] : undefined;
    if (!load) return Promise.reject(new Error(`unknown check kind "${name}"`));
    let pending = this.loaded.get(name);
    if (!pending) {
      pending = load().then((m) => m.default);
      this.loaded.set(name, pending);
    }
    return pending;
  }
}

/** The longest `abortGraceMs` a kind may ask for: the time a run may outlast its deadline. */
export const MAX_ABORT_GRACE_MS = 60_000;

/**
 * A plugin's default export as a kind, or what is wrong with it. Each property is read once,
 * here: a getter that throws or changes its answer later cannot break the runner in the middle
 * of a run (it would have ended without a report).
 */
function kindOf(value: unknown): CheckKind | string {
  try {
    return describeShapeProblem(value) ?? snapshotOf(value as CheckKind);
  } catch (err) {
    return `could not be read as a check kind: ${(err as Error)?.message ?? String(err)}`;
  }
}

function snapshotOf(kind: CheckKind): CheckKind | string {
  const { abortGraceMs = 0, once, prepare } = kind;
  if (typeof abortGraceMs !== 'number' || !(abortGraceMs >= 0 && abortGraceMs <= MAX_ABORT_GRACE_MS))
    return `declares abortGraceMs ${String(abortGraceMs)}: expected a number of milliseconds from 0 to ${MAX_ABORT_GRACE_MS}`;
  if (prepare !== undefined && typeof prepare !== 'function') return 'declares a `prepare` that is not a function';
  return Object.freeze({
    kind: kind.kind,
    options: kind.options,
    target: kind.target.bind(kind),
    run: kind.run.bind(kind),
    ...(prepare ? { prepare: prepare.bind(kind) } : {}),
    abortGraceMs,
    once: once === true,
  });
}

/** A plugin must export by default { kind, options (a Standard Schema), target, run }. */
function describeShapeProblem(kind: unknown): string | undefined {
  if (!kind || typeof kind !== 'object') return 'has no default export of a check kind';
  const k = kind as Record<string, unknown>;
  if (typeof k.kind !== 'string' || !k.kind) return 'default export lacks a string `kind`';
  if (!k.options || typeof k.options !== 'object' || !('~standard' in k.options))
    return 'default export lacks `options`, a Standard Schema (zod, valibot, ...)';
  if (typeof k.run !== 'function') return 'default export lacks a `run(options, context)` function';
  if (typeof k.target !== 'function') return 'default export lacks a `target(options)` function';
  return undefined;
}
