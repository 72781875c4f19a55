// Turns schema issues into "path: message" lines, the form every configuration error takes.
import type { StandardIssue, StandardSchemaV1 } from '../check.js';

export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
  }
}

export function issuePath(prefix: string, issue: StandardIssue): string {
  let path = prefix;
  for (const part of issue.path ?? []) {
    const key = typeof part === 'object' ? part.key : part;
    path += typeof key === 'number' ? `[${key}]` : path ? `.${String(key)}` : String(key);
  }
  return path;
}

export function formatIssues(prefix: string, issues: ReadonlyArray<StandardIssue>): string[] {
  return issues.map((issue) => `${issuePath(prefix, issue) || '(top level)'}: ${issue.message}`);
}

/** Validate with any Standard Schema; throw a ConfigError naming every problem with its path. */
export async function validate<T>(
  schema: StandardSchemaV1<unknown, T>,
  value: unknown,
  prefix: string,
): Promise<T> {
  const result = await schema['~standard'].validate(value);
  if (result.issues) throw new ConfigError(formatIssues(prefix, result.issues));
  return result.value;
}
