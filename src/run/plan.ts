// From check specs to a plan: each spec's kind found and its options validated, ids unique,
// dependencies known and acyclic, then narrowed by --only / --skip.
import type { CheckKind } from '../check.js';
import { ConfigError, formatIssues } from '../config/issues.js';
import type { CheckSpec } from '../stack/index.js';
import type { KindRegistry } from './kinds.js';
import { settleWithin } from './runner.js';
import { loadPicomatch } from '../lazy-modules.js';

export interface PlannedCheck {
  id: string;
  /** The kind's module (its name is `checkKind.kind`). */
  checkKind: CheckKind;
  service?: string;
  options: unknown;
  /** Where it looks, before redaction. */
  target: string;
  timeoutMs: number;
  dependsOn: string[];
  /** Where the config declares it (environments.staging.checks[3]), for its messages. */
  source?: string;
  /** Why the check cannot run (a plugin whose schema never answered): the runner fails it with this. */
  problem?: string;
}

export async function buildPlan(
  specs: CheckSpec[],
  kinds: KindRegistry,
  defaultTimeoutMs: number,
): Promise<PlannedCheck[]> {
  const problems: string[] = [];
  const seen = new Map<string, string>();
  const plan: PlannedCheck[] = [];
  // Every schema answers concurrently: a plugin's schema that hangs costs its timeout once, not
  // once per check.
  const validations = specs.map((spec) => (kinds.has(spec.kind) ? validateSpec(spec, kinds, spec.timeoutMs ?? defaultTimeoutMs) : undefined));
  for (const [i, spec] of specs.entries()) {
    const earlier = seen.get(spec.id);
    if (earlier) problems.push(`${spec.source}.id: "${spec.id}" is already used by ${earlier}`);
    seen.set(spec.id, spec.source);
    const validation = validations[i];
    if (!validation) {
      problems.push(`${spec.source}.kind: unknown check kind "${spec.kind}" (known: ${kinds.names().join(', ')})`);
      continue;
    }
    const { kind, timeoutMs, validated } = await validation;
    const planned = { id: spec.id, checkKind: kind, service: spec.service, timeoutMs, dependsOn: spec.dependsOn ?? [], source: spec.source };
    if (typeof validated === 'string' || !validated.done) {
      const why = typeof validated === 'string' ? validated : `its options schema did not answer within ${timeoutMs} ms`;
      plan.push({ ...planned, options: undefined, target: '-', problem: `the ${spec.kind} check cannot run: ${why}` });
      continue;
    }
    const result = validated.value;
    if (result.issues) {
      problems.push(...formatIssues(spec.source, result.issues));
      continue;
    }
    plan.push({ ...planned, options: result.value, target: targetOf(kind, result.value) });
  }
  for (const check of plan) {
    for (const dep of check.dependsOn) {
      if (!seen.has(dep)) problems.push(`${check.source ?? check.id}.dependsOn: unknown check "${dep}"`);
    }
  }
  const cycle = findCycle(plan);
  if (cycle) problems.push(`dependsOn forms a cycle: ${cycle.join(' -> ')}`);
  if (problems.length) throw new ConfigError(problems);
  return plan;
}

/**
 * A spec's options through its kind's schema. A plugin's schema may hang or throw: it is bounded
 * by the check's timeout and becomes a failed check of the report, not a process that never ends.
 */
async function validateSpec(spec: CheckSpec, kinds: KindRegistry, timeoutMs: number) {
  const kind = await kinds.get(spec.kind);
  const validated = await settleWithin(() => kind.options['~standard'].validate(spec.options), timeoutMs).catch(
    (err: unknown) => `its options schema threw: ${(err as Error)?.message ?? String(err)}`,
  );
  return { kind, timeoutMs, validated };
}

/** Where a check looks; a plugin's `target` that throws or answers no string must not end the run. */
function targetOf(kind: CheckKind, options: unknown): string {
  try {
    const target = kind.target(options);
    return typeof target === 'string' ? target : String(target);
  } catch (err) {
    return `(target() threw: ${(err as Error)?.message ?? String(err)})`;
  }
}

/** Keep the checks whose id matches --only (if any) and not --skip; drop dangling dependencies. */
export async function selectChecks(plan: PlannedCheck[], only: string[], skip: string[]): Promise<PlannedCheck[]> {
  if (only.length === 0 && skip.length === 0) return plan;
  const picomatch = await loadPicomatch(); // only for patterns
  const matches = (patterns: string[]) => (patterns.length ? picomatch(patterns) : () => false);
  const isOnly = matches(only);
  const isSkipped = matches(skip);
  const kept = plan.filter((c) => (only.length === 0 || isOnly(c.id)) && !isSkipped(c.id));
  const ids = new Set(kept.map((c) => c.id));
  return kept.map((c) => ({ ...c, dependsOn: c.dependsOn.filter((d) => ids.has(d)) }));
}

function findCycle(plan: PlannedCheck[]): string[] | undefined {
  const deps = new Map(plan.map((c) => [c.id, c.dependsOn]));
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (id: string): string[] | undefined => {
    if (state.get(id) === 'done') return undefined;
    if (state.get(id) === 'visiting') return [...stack.slice(stack.indexOf(id)), id];
    state.set(id, 'visiting');
    stack.push(id);
    for (const dep of deps.get(id) ?? []) {
      const cycle = visit(dep);
      if (cycle) return cycle;
    }
    stack.pop();
    state.set(id, 'done');
    return undefined;
  };
  for (const id of deps.keys()) {
    const cycle = visit(id);
    if (cycle) return cycle;
  }
  return undefined;
}
