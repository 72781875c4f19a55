// Finds, parses, interpolates and validates the configuration file.
import { existsSync } from 'node:fs';
import { extname, resolve } from 'node:path';
import { interpolate, type NamedSecret } from './interpolate.js';
import { loadYaml } from '../lazy-modules.js';
import { ConfigError, validate } from './issues.js';
import { FileReadError, MiB, readRegularFile } from '../read-file.js';
import type { Env } from './secrets.js';
import type { ConfigFile } from './schema.js';

export const CONFIG_NAMES = [
  'soma-verify.config.yaml',
  'soma-verify.config.yml',
  'soma-verify.config.json',
];

/**
 * What a config file may make the tool do is bounded: its size (a real config is a few KiB; 2 MiB
 * holds 30k checks; the yaml parser needs seconds per MiB), how deep its values nest (each level is a recursion in
 * interpolation and validation) and how often YAML aliases repeat a node (an alias bomb).
 */
export const CONFIG_MAX_BYTES = 2 * MiB;
export const CONFIG_MAX_DEPTH = 64;
const YAML_MAX_ALIAS_COUNT = 100;

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

/** `read` sees the parsed, interpolated file before it is validated (to prepare for its size). */
export async function loadConfig(path: string, env: Env, read?: (value: unknown) => void): Promise<LoadedConfig> {
  let text: string;
  try {
    text = (await readRegularFile(path, CONFIG_MAX_BYTES)).toString('utf8');
  } catch (err) {
    if (err instanceof FileReadError) throw new ConfigError([err.message]);
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError([
      code === 'ENOENT' ? `${path}: no such config file` : `${path}: cannot read (${code})`,
    ]);
  }
  const parsed = await parse(path, text);
  const { value, errors, substituted, secrets } = interpolate(parsed, env);
  if (errors.length) throw new ConfigError(errors);
  read?.(value);
  const { configFile } = await import('./schema.js');
  const config = await validate(configFile, value, '');
  return { path, config, substituted, secrets };
}

async function parse(path: string, text: string): Promise<unknown> {
  // A byte order mark is not part of the document, in JSON as in YAML.
  if (text.startsWith('\uFEFF')) text = text.slice(1);
  if (!text.trim()) throw new ConfigError([`${path}: the file is empty`]);
  const value = extname(path) === '.json' ? parseJson(path, text) : await parseYaml(path, text);
  if (nestingDepth(value) > CONFIG_MAX_DEPTH) throw new ConfigError([`${path}: values nest more than ${CONFIG_MAX_DEPTH} levels deep`]);
  return value;
}

function parseJson(path: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    // V8 parses deep nesting iteratively, but say it plainly if an engine runs out of stack.
    if (err instanceof RangeError) throw new ConfigError([`${path}: not valid JSON: nested too deeply`]);
    throw new ConfigError([`${path}: not valid JSON${jsonErrorWhere(text, (err as Error).message)}`]);
  }
}

async function parseYaml(path: string, text: string): Promise<unknown> {
  const { parseDocument, visit, isMap, isScalar } = await loadYaml();
  const lineOf = (offset: number) => text.slice(0, offset).split('\n').length;
  let doc;
  try {
    // prettyErrors would quote the offending line, which may hold a secret: give its number only.
    // uniqueKeys compares each key with every earlier one of its map (quadratic: a 10 MB config
    // took minutes), so duplicates are found below, with one Set per map.
    doc = parseDocument(text, { prettyErrors: false, uniqueKeys: false });
  } catch (err) {
    if (err instanceof RangeError) throw new ConfigError([`${path}: not valid YAML: nested too deeply`]);
    throw err;
  }
  const problems = doc.errors.map((e) => `${path}: line ${lineOf(e.pos[0])}: ${e.message.split('\n')[0]}`);
  if (problems.length === 0) {
    visit(doc, {
      Map(_, map) {
        if (!isMap(map)) return;
        const seen = new Set<unknown>();
        for (const pair of map.items) {
          const key = isScalar(pair.key) ? pair.key.value : pair.key;
          if (seen.has(key) && isScalar(pair.key)) {
            problems.push(`${path}: line ${lineOf(pair.key.range?.[0] ?? 0)}: map keys must be unique ("${String(key).slice(0, 40)}" repeats)`);
          }
          seen.add(key);
        }
      },
    });
  }
  if (problems.length) throw new ConfigError(problems);
  try {
    return doc.toJS({ maxAliasCount: YAML_MAX_ALIAS_COUNT });
  } catch (err) {
    // An alias with no anchor, or one that expands too often (an "alias bomb"): one line each.
    if (err instanceof ReferenceError || err instanceof RangeError) {
      throw new ConfigError([`${path}: ${err instanceof RangeError ? 'nested too deeply' : (err as Error).message.split('\n')[0]}`]);
    }
    throw err;
  }
}

/** How deep `value` nests (a scalar is 0; counting stops past the limit), without recursion: the input may be 100k levels deep. */
function nestingDepth(value: unknown): number {
  let max = 0;
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (depth > max) max = depth;
    if (max > CONFIG_MAX_DEPTH) return max;
    if (v && typeof v === 'object') for (const child of Object.values(v)) stack.push([child, depth + 1]);
  }
  return max;
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
