// Finds, parses, interpolates and validates the configuration file.
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { extname, resolve } from 'node:path';
import { interpolate, type NamedSecret } from './interpolate.js';
import { loadYaml } from '../lazy-modules.js';
import { ConfigError, validate } from './issues.js';
import type { Env } from './secrets.js';
import type { ConfigFile } from './schema.js';

export const CONFIG_NAMES = [
  'soma-verify.config.yaml',
  'soma-verify.config.yml',
  'soma-verify.config.json',
];

export interface LoadedConfig {
  path: string;
  config: ConfigFile;
  /** Values substituted from variables. */
  substituted: string[];
  /** The substituted values that are secrets: the redactor learns them. */
  secrets: NamedSecret[];
}

/** The file named by --config, else the first conventional name in the working directory. */
export function findConfigFile(cwd: string, explicit?: string): string | undefined {
  if (explicit) return resolve(cwd, explicit);
  return CONFIG_NAMES.map((name) => resolve(cwd, name)).find((path) => existsSync(path));
}

export async function loadConfig(path: string, env: Env): Promise<LoadedConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError([
      code === 'ENOENT' ? `${path}: no such config file` : `${path}: cannot read (${code})`,
    ]);
  }
  const parsed = await parse(path, text);
  const { value, errors, substituted, secrets } = interpolate(parsed, env);
  if (errors.length) throw new ConfigError(errors);
  const { configFile } = await import('./schema.js');
  const config = await validate(configFile, value, '');
  return { path, config, substituted, secrets };
}

async function parse(path: string, text: string): Promise<unknown> {
  if (!text.trim()) throw new ConfigError([`${path}: the file is empty`]);
  if (extname(path) === '.json') {
    try {
      return JSON.parse(text);
    } catch (err) {
      throw new ConfigError([`${path}: not valid JSON${jsonErrorWhere(text, (err as Error).message)}`]);
    }
  }
  const { parseDocument } = await loadYaml();
  // prettyErrors would quote the offending line, which may hold a secret: give its number only.
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length) {
    const lineOf = (offset: number) => text.slice(0, offset).split('\n').length;
    throw new ConfigError(doc.errors.map((e) => `${path}: line ${lineOf(e.pos[0])}: ${e.message.split('\n')[0]}`));
  }
  return doc.toJS();
}

/**
 * Where JSON.parse stopped, without its excerpt: V8 quotes the text around the error
 * ("Unexpected token ..., ...\"token\": \"s3cr3t\" is not valid JSON"), which may hold a secret.
 */
function jsonErrorWhere(text: string, message: string): string {
  const position = /at position (\d+)/.exec(message);
  const head = message.split(/ in JSON| is not valid JSON/)[0]!;
  const reason = /Unexpected token|["]/.test(head) ? ': unexpected character' : `: ${head}`;
  if (!position) return reason;
  const before = text.slice(0, Number(position[1]));
  const line = before.split('\n').length;
  return `: line ${line}, column ${before.length - before.lastIndexOf('\n')}${reason}`;
}
