// The single place that masks secrets. Everything that leaves the process (report, progress,
// error) goes through a Redactor: it knows every resolved secret value, and it masks the
// credentials inside any URL or DSN it meets, known or not. It masks free text and values only
// (a message, a target, the values of details), never the report's own structure (status, ids,
// kinds, summary keys): a secret that happens to be a word of the report must not change it.

import type { CheckResult } from './check.js';

export const MASK = '***';
/** Shorter values are not masked (masking "a" would shred every message); they are named instead. */
export const MIN_SECRET_LENGTH = 3;

// scheme://user:password@host and scheme://token@host (userinfo of URLs and DSNs). The password
// runs to the LAST `@` before the host, as pg and WHATWG URL read it: `u:pa@rt@host` has the
// password `pa@rt`, and stopping at the first `@` would print `rt`.
const URL_USERINFO = /\b([a-z][a-z0-9+._-]*:\/\/)([^\s/@:'"]*)(?::([^\s/'"]*))?@/gi;
const TOKEN_SCHEMES = /^(https?|wss?):\/\/$/i;
// key=value pairs of libpq DSNs, query strings and env lines: password=..., apikey=...,
// token=..., sig=..., and the same words at the end of a longer name (db_password=,
// client_secret=, refresh_token=, POSTGRES_PASSWORD=, sslpassword=, x-amz-signature=).
const SECRET_NAME = String.raw`(?:[a-z0-9_.-]*?(?:password|passwd|pwd|secret|token|api[-_]?key|signature)|key|sig|auth)`;
const SECRET_PAIR = new RegExp(String.raw`(?<![a-z0-9_.-])(${SECRET_NAME})=([^\s&;'"]+)`, 'gi');
/** A query parameter whose value is a secret (tested alone, so no shared lastIndex). */
const SECRET_PARAM = new RegExp(`^${SECRET_NAME}$`, 'i');
// The scheme word of an Authorization value: the credential after it is a secret of its own.
const AUTH_SCHEME = /^\s*(bearer|basic|token|digest|negotiate|apikey|api-key)\s+(.+?)\s*$/is;

/** Mask the credentials found inside URLs, DSNs and key=value pairs of a string. */
export function maskCredentials(text: string): string {
  return text
    .replace(URL_USERINFO, (match, scheme: string, user: string, pass: string | undefined) => {
      if (pass !== undefined) return `${scheme}${user}:${MASK}@`;
      // A lone user name is a token in http(s)://token@host, but only a role in a DSN.
      return TOKEN_SCHEMES.test(scheme) ? `${scheme}${MASK}@` : match;
    })
    .replace(SECRET_PAIR, (_m, key: string) => `${key}=${MASK}`);
}

/** The forms a server may echo a secret in: raw, URL-, JSON- and base64-encoded, lower-cased (hostnames). */
const HTML_ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' };

function formsOf(value: string): string[] {
  const json = JSON.stringify(value).slice(1, -1);
  // Go and Python escape <, >, & and non-ASCII as \u00XX in JSON.
  const asciiJson = json.replace(/[<>&\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  const forms = [
    value,
    encodeURIComponent(value),
    encodeURI(value),
    new URLSearchParams({ v: value }).toString().slice(2),
    json,
    asciiJson,
    Buffer.from(value).toString('base64'),
    Buffer.from(value).toString('base64url'),
    value.toLowerCase(),
    // .NET's percent-encoding is lower-case; PHP's json_encode escapes '/'; HTML error pages escape & < > " '.
    encodeURIComponent(value).replace(/%[0-9A-F]{2}/g, (hex) => hex.toLowerCase()),
    json.replaceAll('/', '\\/'),
    ...["&#39;", "&#x27;"].map((apos) => value.replace(/[&<>"']/g, (c) => (c === "'" ? apos : HTML_ENTITIES[c]!))),
  ];
  // UTF-8 read as Latin-1 with what is not printable ASCII blanked: how a wrong-protocol peer's
  // echo is quoted (previewForeignBytes). Only when it differs, and long enough not to mask
  // ordinary words ("über" would become "ber").
  const blanked = Buffer.from(value).toString('latin1').replace(/[^\x20-\x7e]+/g, ' ').trim();
  if (/[^\x20-\x7e]/.test(value) && blanked.length >= 8) forms.push(blanked);
  // A multi-line secret (a PEM through _FILE) may come back line by line or with other line ends.
  if (/[\r\n]/.test(value)) {
    forms.push(value.replace(/\r?\n/g, '\r\n'), value.replace(/\s*[\r\n]+\s*/g, ' '));
    for (const line of value.split(/\r?\n/)) if (line.trim().length >= 8) forms.push(line.trim());
  }
  return forms;
}

export class Redactor {
  private readonly secrets = new Set<string>();
  private sorted: string[] | undefined;
  /** Names of secrets too short to mask, to say so at start-up (never their values). */
  readonly tooShort: string[] = [];

  /**
   * Remember a secret value (and the forms it may be printed in) to mask it everywhere.
   * `name` (a variable or config field) is what a too-short secret is reported by.
   */
  add(value: string | undefined, name?: string): void {
    if (!value) return;
    if (value.length < MIN_SECRET_LENGTH) {
      if (name && !this.tooShort.includes(name)) this.tooShort.push(name);
      return;
    }
    for (const form of formsOf(value)) if (form.length >= MIN_SECRET_LENGTH) this.secrets.add(form);
    this.sorted = undefined;
  }

  /**
   * Remember a credential as a header or a token field carries it: the whole value, the part
   * after an `Authorization` scheme word (`Bearer X` -> `X`), for `Basic` the decoded
   * `user:password` and its password, and each value of a cookie list.
   */
  addCredential(value: string | undefined, name?: string): void {
    if (!value) return;
    this.add(value, name);
    // Each value of a cookie list (`sid=abc; csrf=def`) on its own.
    for (const pair of value.split(';')) this.add(/^\s*[^=\s]+=(.+?)\s*$/.exec(pair)?.[1], name);
    const scheme = AUTH_SCHEME.exec(value);
    if (!scheme) return;
    const credential = scheme[2]!;
    this.add(credential, name);
    if (scheme[1]!.toLowerCase() === 'basic' && /^[A-Za-z0-9+/=_-]+$/.test(credential)) {
      const decoded = Buffer.from(credential, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon >= 0) {
        this.add(decoded, name);
        this.add(decoded.slice(colon + 1), name);
      }
    }
  }

  /** Remember the password or token inside a URL or DSN. */
  addFromUrl(url: string | undefined, name?: string): void {
    if (!url) return;
    try {
      const u = new URL(url);
      this.add(safeDecode(u.password), name);
      if (!u.password && TOKEN_SCHEMES.test(`${u.protocol}//`)) this.add(safeDecode(u.username), name);
      for (const [k, v] of u.searchParams) if (SECRET_PARAM.test(k)) this.add(v, name);
    } catch {
      // Not a URL to Node (a password with a raw '/' or space): its userinfo, up to the last '@'.
      const password = /^[a-z][\w+.-]*:\/\/[^:@]*:(.*)@[^@]*$/is.exec(url)?.[1];
      this.add(password, name);
      this.add(password && safeDecode(password), name);
    }
  }

  /** Mask every known secret and every credential in a free text. */
  text(value: string): string {
    let out = maskCredentials(value);
    // Longest first, so a secret that contains another is masked whole.
    this.sorted ??= [...this.secrets].sort((a, b) => b.length - a.length);
    for (const s of this.sorted) if (out.includes(s)) out = out.split(s).join(MASK);
    return maskCutSecret(out, this.sorted);
  }

  /** Deep copy of a JSON-like value with every string redacted (object keys are structure: kept). */
  value<T>(input: T): T {
    if (typeof input === 'string') return this.text(input) as T;
    if (Array.isArray(input)) return input.map((v) => this.value(v)) as T;
    if (input && typeof input === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(input)) out[k] = this.value(v);
      return out as T;
    }
    return input;
  }

  /**
   * A result as it may be printed: its free text (message, target, details values) masked, then
   * the message made one line. Masking comes first, so a multi-line secret is still whole when
   * it is looked for. Status, id, kind, service and timing are left exactly as the check gave them.
   */
  result(result: CheckResult): CheckResult {
    return {
      ...result,
      target: this.text(result.target),
      // Every line break, CR alone included: a CI runner reads a line starting with "::" as a command.
      message: this.text(result.message).replace(/\s*[\r\n\u2028\u2029]\s*/g, ' '),
      details: this.value(result.details),
    };
  }
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/**
 * A quoted piece of a service's text, at most `max` characters: a longer one is cut and marked
 * with "…" (or "..."), the marks the redactor looks for. A cut can split a secret in two, and only its start
 * is then left to find; every check that shortens what it quotes does it here.
 */
export function excerpt(text: string, max: number, mark: '…' | '...' = '…'): string {
  return text.length > max ? `${text.slice(0, max)}${mark}` : text;
}

/**
 * Mask the start of a secret (4 characters or more) where a cut left it: before each "..." or
 * "…" (see `excerpt`), and at the end of a long quoted text (a body cut at a fixed length), not
 * at the end of every short message.
 */
const CUT_TEXT_MIN_LENGTH = 100;
function maskCutSecret(text: string, secrets: string[]): string {
  // \u2026 is "…", escaped: esbuild leaves regular expressions as written, and one non-ASCII
  // character makes V8 hold the whole bundle as a two-byte string.
  const cuts = [...text.matchAll(/\.\.\.|\u2026/g)].map((m) => m.index!);
  const end = /["'\s]*$/.exec(text)!.index;
  if (text.length >= CUT_TEXT_MIN_LENGTH && !cuts.some((i) => /^(?:\.\.\.|\u2026)["'\s]*$/.test(text.slice(i)))) cuts.push(end);
  // From the right, so that the places still to look at keep their index.
  for (const at of cuts.sort((a, b) => b - a)) text = maskStartBefore(text, at, secrets);
  return text;
}

function maskStartBefore(text: string, at: number, secrets: string[]): string {
  const before = text.slice(0, at);
  const tail = before.slice(-4);
  for (const s of secrets) {
    if (tail.length < 4 || !s.includes(tail)) continue;
    for (let n = Math.min(s.length - 1, before.length); n >= 4; n--) {
      if (before.endsWith(s.slice(0, n))) return `${before.slice(0, before.length - n)}${MASK}${text.slice(at)}`;
    }
  }
  return text;
}

const SECRET_KEY = /(token|password|passwd|secret|api[-_]?key|auth|credential|cookie|session|signature)/i;
// A name that ends in the word "key": PRIVATE_KEY, SFM_KEY, x-api-key, clientKey (not "monkey").
const KEY_SUFFIX = /(?:^|[_.-])key$/i;
const CAMEL_KEY_SUFFIX = /[a-z0-9]Key$/;

/** Whether a field or variable name says its value is a secret (SFM_TOKEN, password, apiKey, X-Auth...). */
export function isSecretName(name: string): boolean {
  return SECRET_KEY.test(name) || KEY_SUFFIX.test(name) || CAMEL_KEY_SUFFIX.test(name);
}

/**
 * Teach a redactor every secret inside a configuration value: the values of secret-named fields
 * (token, password, apiKey, an Authorization header...), every value of a `headers` map (a user
 * sets a header because it matters), and the credentials of URLs and DSNs. `path` names a secret
 * that is too short to mask.
 */
export function learnSecrets(redactor: Redactor, value: unknown, key = '', path = key, inHeaders = false): void {
  if (typeof value === 'string') {
    if (isSecretName(key)) redactor.addCredential(value, path);
    else if (inHeaders) redactor.addCredential(value);
    if (value.includes('://') || value.includes('@')) redactor.addFromUrl(value, path);
    return;
  }
  if (Array.isArray(value)) return value.forEach((v, i) => learnSecrets(redactor, v, key, `${path}[${i}]`, inHeaders));
  if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      learnSecrets(redactor, v, k, path ? `${path}.${k}` : k, inHeaders || k.toLowerCase() === 'headers');
    }
  }
}
