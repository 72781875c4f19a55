// Secret resolution in the order of the stack's own runtime (seed 000): for any KEY the first
// non-empty of KEY, KEY_FILE (file contents, surrounding whitespace stripped), KEY_B64 (base64),
// KEY_B64_FILE (a file holding base64) wins.
import { FileReadError, MiB, readRegularFileSync } from '../read-file.js';

/** A secret file (a token, a PEM key, a JSON key file) is small; a larger one is a mistake. */
const SECRET_FILE_MAX_BYTES = MiB;

export type Env = Readonly<Record<string, string | undefined>>;

export class SecretError extends Error {
  override name = 'SecretError';
}

export interface ResolvedSecret {
  value: string;
  /** Which variable gave it: KEY, KEY_FILE, KEY_B64 or KEY_B64_FILE. */
  from: string;
}

export function resolveSecret(key: string, env: Env): ResolvedSecret | undefined {
  const plain = env[key];
  if (plain) return { value: plain, from: key };
  const file = env[`${key}_FILE`];
  if (file) {
    const value = readSecretFile(file, `${key}_FILE`).trim();
    if (value) return { value, from: `${key}_FILE` };
  }
  const b64 = env[`${key}_B64`];
  if (b64) {
    const value = decodeBase64(b64, `${key}_B64`);
    if (value) return { value, from: `${key}_B64` };
  }
  const b64File = env[`${key}_B64_FILE`];
  if (b64File) {
    const value = decodeBase64(readSecretFile(b64File, `${key}_B64_FILE`).trim(), `${key}_B64_FILE`);
    if (value) return { value, from: `${key}_B64_FILE` };
  }
  return undefined;
}

function readSecretFile(path: string, variable: string): string {
  try {
    return readRegularFileSync(path, SECRET_FILE_MAX_BYTES).toString('utf8');
  } catch (err) {
    if (err instanceof FileReadError) throw new SecretError(`${variable}: ${err.message}`, { cause: err });
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new SecretError(`${variable}: cannot read ${path} (${code})`, { cause: err });
  }
}

function decodeBase64(text: string, variable: string): string {
  const compact = text.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(compact) || compact.length % 4 === 1) {
    throw new SecretError(`${variable}: not valid base64`);
  }
  return Buffer.from(compact, 'base64').toString('utf8').trim();
}
