// Lossless `.env` reading and editing, shared by soma-ports (which rewrites port values) and the
// verifier (which reads `.env` for `soma-verify local`).
//
// Why hand-written: dotenv and its kin parse a file into a plain object and forget where each
// value sat, so they cannot write the file back byte for byte. Here the parse keeps the original
// text plus the exact offsets of every value; an edit replaces only those offsets, so comments,
// blank lines, order, `export ` prefixes, quoting, CRLF endings, a missing final newline and
// unknown keys survive untouched.
//
// Accepted syntax (docker compose / dotenv): blank lines, `# comments`, and
// `[export ]KEY=VALUE` with KEY `[A-Za-z_][A-Za-z0-9_.]*`, optional spaces around `=`. VALUE is
// unquoted (an inline comment starts at a `#` preceded by a space or tab), 'single-quoted'
// (literal) or "double-quoted" (\n \r \t \\ \" \$ escapes); quoted values may span lines.
// Anything else is an EnvParseError naming the line; the message never quotes the line itself,
// because a malformed line can hold a secret. Line ends are LF or CRLF; a carriage return alone
// (old Mac line ends) outside a quoted value is refused: read as one line, it would hide keys.
import { MiB, readRegularFile } from './read-file.js';

/** The largest `.env` read: far above any real one, far below what would hurt. */
export const ENV_FILE_MAX_BYTES = MiB;

export type EnvQuote = '' | "'" | '"';

export interface EnvEntry {
  key: string;
  /** The value as a program sees it: quotes removed, double-quote escapes decoded. */
  value: string;
  /** 1-based line on which the entry starts. */
  line: number;
  exported: boolean;
  quote: EnvQuote;
  /** Offsets in `EnvFile.text` of the raw value, inside the quotes when quoted. */
  valueStart: number;
  valueEnd: number;
}

export interface EnvFile {
  /** The original text, unchanged. */
  text: string;
  /** Entries in file order; a key may appear more than once (the last one wins). */
  entries: EnvEntry[];
  /** The dominant line ending, used for appended lines. */
  eol: '\n' | '\r\n';
  /** True when the text is empty or ends with a newline. */
  endsWithNewline: boolean;
}

export class EnvParseError extends Error {
  override name = 'EnvParseError';
  constructor(
    readonly line: number,
    what: string,
  ) {
    super(`line ${line}: ${what}`);
  }
}

const BARE_CR = 'a carriage return without a line feed (CR-only line ends?): convert the file to LF line ends';
const ASSIGNMENT = /^[ \t]*(export[ \t]+)?([A-Za-z_][A-Za-z0-9_.]*)[ \t]*=[ \t]*/;
const AFTER_QUOTE = /^[ \t]*(#.*)?$/;
const DOUBLE_QUOTE_ESCAPES: Record<string, string> = {
  n: '\n',
  r: '\r',
  t: '\t',
  '\\': '\\',
  '"': '"',
  $: '$',
};

/** Parse `.env` text. Throws EnvParseError (with `.line`) on a line it cannot keep lossless. */
export function parseEnvFile(text: string): EnvFile {
  const entries: EnvEntry[] = [];
  let pos = text.startsWith('\uFEFF') ? 1 : 0; // a BOM stays in `text`, it is just not a key
  let line = 1;
  // Shells and docker compose read a value only up to a NUL: what follows it would be hidden.
  const nul = text.indexOf('\0');
  if (nul !== -1) throw new EnvParseError(text.slice(0, nul).split('\n').length, 'a NUL byte: what follows it would be hidden from the programs that read this file');

  /** End of the physical line starting at `from`: [content end, next line start]. */
  const lineBounds = (from: number): [number, number] => {
    const nl = text.indexOf('\n', from);
    if (nl === -1) return [text.length, text.length];
    return nl > from && text[nl - 1] === '\r' ? [nl - 1, nl + 1] : [nl, nl + 1];
  };

  while (pos < text.length) {
    const startLine = line;
    let [contentEnd, next] = lineBounds(pos);
    const content = text.slice(pos, contentEnd);
    const trimmed = content.trimStart();
    if (trimmed === '' || trimmed.startsWith('#')) {
      if (content.includes('\r')) throw new EnvParseError(startLine, BARE_CR);
      pos = next;
      line++;
      continue;
    }
    const match = ASSIGNMENT.exec(content);
    if (!match) {
      const what = content.includes('=')
        ? 'expected KEY=VALUE with KEY made of letters, digits, _ and . (not starting with a digit)'
        : "expected KEY=VALUE (no '=' on the line)";
      throw new EnvParseError(startLine, what);
    }
    const key = match[2] as string;
    const exported = match[1] !== undefined;
    const valueOffset = pos + match[0].length;
    const first = text[valueOffset];

    if ((first === '"' || first === "'") && valueOffset < contentEnd) {
      const quote = first;
      let i = valueOffset + 1;
      let decoded = '';
      for (;;) {
        if (i >= text.length) {
          throw new EnvParseError(startLine, `unterminated ${quote === '"' ? 'double' : 'single'} quote`);
        }
        const c = text[i] as string;
        if (c === quote) break;
        if (c === '\\' && quote === '"' && i + 1 < text.length) {
          const escaped = text[i + 1] as string;
          decoded += DOUBLE_QUOTE_ESCAPES[escaped] ?? `\\${escaped}`;
          if (escaped === '\n') line++;
          i += 2;
          continue;
        }
        if (c === '\n') line++;
        decoded += c;
        i++;
      }
      const closing = i;
      // The closing quote may sit on a later line than the opening one.
      [contentEnd, next] = lineBounds(closing);
      const afterQuote = text.slice(closing + 1, contentEnd);
      if (afterQuote.includes('\r')) throw new EnvParseError(line, BARE_CR);
      if (!AFTER_QUOTE.test(afterQuote)) {
        throw new EnvParseError(line, 'unexpected text after the closing quote');
      }
      entries.push({ key, value: decoded, line: startLine, exported, quote, valueStart: valueOffset + 1, valueEnd: closing });
    } else {
      const rest = text.slice(valueOffset, contentEnd);
      if (rest.includes('\r')) throw new EnvParseError(startLine, BARE_CR);
      let valueLength: number;
      const spaceBefore = match[0].length > 0 && /[ \t]$/.test(match[0]);
      if (rest.startsWith('#') && spaceBefore) {
        valueLength = 0;
      } else {
        const comment = /[ \t]#/.exec(rest);
        valueLength = (comment ? rest.slice(0, comment.index) : rest).replace(/[ \t]+$/, '').length;
      }
      // An empty value sits right after '=', so that setting it never glues the new value to an
      // inline comment: `KEY= # c` becomes `KEY=5 # c`.
      const start = valueLength === 0 ? pos + content.indexOf('=') + 1 : valueOffset;
      entries.push({
        key,
        value: text.slice(valueOffset, valueOffset + valueLength),
        line: startLine,
        exported,
        quote: '',
        valueStart: start,
        valueEnd: start + valueLength,
      });
    }
    pos = next;
    line++;
  }

  const crlf = text.split('\r\n').length - 1;
  const lf = text.split('\n').length - 1 - crlf;
  return {
    text,
    entries,
    eol: crlf > lf ? '\r\n' : '\n',
    endsWithNewline: text.length === 0 || text.endsWith('\n'),
  };
}

/** The values a program sees: last duplicate wins. */
export function envValues(file: EnvFile): Map<string, string> {
  const values = new Map<string, string>();
  for (const entry of file.entries) values.set(entry.key, entry.value);
  return values;
}

/**
 * The values docker compose gives its services from this file: unquoted and double-quoted values
 * interpolated as compose does (`${VAR}`, `$VAR`, `${VAR:-default}`, `${VAR-default}`,
 * `${VAR:+alt}`, `${VAR+alt}`, `${VAR:?message}`, `$$` for a `$`; `\$` in double quotes),
 * single-quoted ones literal. A name is looked up in `env` (the shell wins), then in the lines
 * above. Hand-written: dotenv and dotenv-expand follow other rules, and compose's are in Go.
 */
export function composeValues(file: EnvFile, env: Record<string, string | undefined>): Map<string, string> {
  const values = new Map<string, string>();
  const lookup = (name: string) => env[name] ?? values.get(name);
  for (const entry of file.entries) {
    if (entry.quote === "'") {
      values.set(entry.key, entry.value);
      continue;
    }
    // An escaped `$` must stay one: NUL stands for it while interpolating (a .env holds no NUL).
    const text =
      entry.quote === '"'
        ? file.text.slice(entry.valueStart, entry.valueEnd).replace(/\\(.)/gs, (m, c: string) => (c === '$' ? '\0' : (DOUBLE_QUOTE_ESCAPES[c] ?? m)))
        : entry.value;
    values.set(entry.key, interpolate(text, lookup, entry).replace(/\0/g, '$'));
  }
  return values;
}

const NAME = '[A-Za-z_][A-Za-z0-9_]*';
const REFERENCE = new RegExp(`\\$\\$|\\$(${NAME})|\\$\\{(${NAME})(?:(:?[-+?])((?:[^{}]|\\{[^{}]*\\})*))?\\}`, 'g');

function interpolate(text: string, lookup: (name: string) => string | undefined, entry: EnvEntry): string {
  return text.replace(REFERENCE, (whole, bare: string | undefined, name: string | undefined, op: string | undefined, arg = '') => {
    if (whole === '$$') return '\0';
    const value = lookup((bare ?? name)!);
    if (!op) return value ?? '';
    const set = op.startsWith(':') ? value !== undefined && value !== '' : value !== undefined;
    const nested = () => interpolate(arg, lookup, entry);
    if (op.endsWith('-')) return set ? value! : nested();
    if (op.endsWith('+')) return set ? nested() : '';
    if (!set) throw new EnvParseError(entry.line, `${name} is required by ${entry.key}: ${nested() || 'it is not set'}`);
    return value!;
  });
}

const SAFE_UNQUOTED = /^[^\s#'"\\$`]*$/;

function encodeDoubleQuoted(value: string): string {
  return value.replace(/[\\"\n\r$]/g, (c) => ({ '\\': '\\\\', '"': '\\"', '\n': '\\n', '\r': '\\r', $: '\\$' })[c] as string);
}

/** The raw text for `value` written in `quote` style, or undefined if that style cannot hold it. */
function encodeIn(quote: EnvQuote, value: string): string | undefined {
  if (quote === '') return SAFE_UNQUOTED.test(value) ? value : undefined;
  if (quote === "'") return value.includes("'") ? undefined : value;
  return encodeDoubleQuoted(value);
}

/**
 * The new text of `file` with `changes` applied. A value that already equals the wanted one is
 * not touched; a changed key is edited at its last occurrence (the one that wins), keeping its
 * quoting style when that style can hold the new value; missing keys are appended with the
 * file's dominant line ending, after a separator newline only if the file lacks a final one.
 */
export function setEnvValues(file: EnvFile, changes: Record<string, string>): string {
  const current = envValues(file);
  const lastEntry = new Map<string, EnvEntry>();
  for (const entry of file.entries) lastEntry.set(entry.key, entry);

  const edits: Array<{ start: number; end: number; text: string }> = [];
  const appended: string[] = [];
  for (const [key, value] of Object.entries(changes)) {
    if (current.get(key) === value) continue;
    const entry = lastEntry.get(key);
    if (!entry) {
      appended.push(`${key}=${encodeIn('', value) ?? `"${encodeDoubleQuoted(value)}"`}`);
      continue;
    }
    const sameStyle = encodeIn(entry.quote, value);
    if (sameStyle !== undefined) {
      edits.push({ start: entry.valueStart, end: entry.valueEnd, text: sameStyle });
    } else {
      // The old style cannot hold the value (e.g. a space in an unquoted one): switch that one
      // value to double quotes, replacing the old quotes too.
      const q = entry.quote === '' ? 0 : 1;
      edits.push({ start: entry.valueStart - q, end: entry.valueEnd + q, text: `"${encodeDoubleQuoted(value)}"` });
    }
  }

  let text = file.text;
  for (const edit of edits.sort((a, b) => b.start - a.start)) {
    text = text.slice(0, edit.start) + edit.text + text.slice(edit.end);
  }
  if (appended.length > 0) {
    const separator = file.endsWithNewline ? '' : file.eol;
    text += separator + appended.map((l) => l + file.eol).join('');
  }
  return text;
}

/**
 * Read and parse a `.env` file; undefined when it does not exist. Bytes that are not valid UTF-8
 * are an EnvParseError: decoding them would replace them and break the byte-for-byte promise.
 * Only a regular file up to ENV_FILE_MAX_BYTES is read (FileReadError otherwise).
 */
export async function readEnvFile(path: string): Promise<EnvFile | undefined> {
  let bytes: Buffer;
  try {
    bytes = await readRegularFile(path, ENV_FILE_MAX_BYTES);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch (cause) {
    const line = firstInvalidUtf8Line(bytes);
    throw Object.assign(new EnvParseError(line, 'not valid UTF-8'), { cause });
  }
  return parseEnvFile(text);
}

function firstInvalidUtf8Line(bytes: Buffer): number {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let line = 1;
  let start = 0;
  for (let i = 0; i <= bytes.length; i++) {
    if (i === bytes.length || bytes[i] === 0x0a) {
      try {
        decoder.decode(bytes.subarray(start, i));
      } catch {
        return line;
      }
      line++;
      start = i + 1;
    }
  }
  return line;
}
