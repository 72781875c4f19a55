// ${VAR} interpolation in configuration values. Each VAR is resolved like a secret (VAR,
// VAR_FILE, VAR_B64, VAR_B64_FILE), so a token can come from a mounted file without a special
// syntax. `${VAR:-default}` gives a default; `$${` writes a literal `${`.
import { isSecretName } from '../redact.js';
import { resolveSecret, type Env } from './secrets.js';

const REFERENCE = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

export interface Interpolation {
  value: unknown;
  /** Problems with their config path, e.g. "environments.staging.services.sfm.token: SOMA_API_TOKEN is not set". */
  errors: string[];
  /** Every value substituted from a variable. */
  substituted: string[];
  /**
   * The substituted values that are secrets, for the redactor to learn wherever they were put
   * (a token in a URL path, a key in a header of any name): those of a secret-named variable
   * (SFM_TOKEN, DB_PASSWORD...) and those read from a KEY_FILE or KEY_B64 source.
   */
  secrets: NamedSecret[];
}

/** A secret value and the variable it came from (named, never shown, when it is too short to mask). */
export interface NamedSecret {
  name: string;
  value: string;
}

export function interpolate(input: unknown, env: Env): Interpolation {
  const errors: string[] = [];
  const substituted: string[] = [];
  const secrets: NamedSecret[] = [];
  const walk = (value: unknown, path: string): unknown => {
    if (typeof value === 'string') return expand(value, path);
    if (Array.isArray(value)) return value.map((v, i) => walk(v, `${path}[${i}]`));
    if (value && typeof value === 'object') {
      return Object.fromEntries(
        Object.entries(value).map(([k, v]) => [k, walk(v, path ? `${path}.${k}` : k)]),
      );
    }
    return value;
  };
  const expand = (text: string, path: string) =>
    text.replace(REFERENCE, (match, name: string | undefined, fallback: string | undefined) => {
      if (match === '$${') return '${';
      let resolved: string | undefined;
      try {
        const found = resolveSecret(name!, env);
        resolved = found?.value;
        if (found && (found.from !== name || isSecretName(name!))) secrets.push({ name: found.from, value: found.value });
      } catch (err) {
        errors.push(`${path}: ${(err as Error).message}`);
        return '';
      }
      if (resolved === undefined) {
        if (fallback !== undefined) return fallback;
        errors.push(`${path}: \${${name}} is not set`);
        return '';
      }
      substituted.push(resolved);
      return resolved;
    });
  return { value: walk(input, ''), errors, substituted, secrets };
}
