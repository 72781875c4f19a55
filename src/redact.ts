// The single place that masks secrets. Everything that leaves the process (report, progress,
// error) goes through a Redactor: it knows every resolved secret value, and it masks the
// credentials inside any URL or DSN it meets, known or not.

export const MASK = '***';

// scheme://user:password@host and scheme://token@host (userinfo of URLs and DSNs).
const URL_USERINFO = /\b([a-z][a-z0-9+._-]*:\/\/)([^\s/@:'"]*)(?::([^\s/@'"]*))?@/gi;
const TOKEN_SCHEMES = /^(https?|wss?):\/\/$/i;
// key=value pairs of libpq DSNs, query strings and env lines: password=..., apikey=...,
// token=..., and the same words at the end of a longer name (db_password=, client_secret=,
// refresh_token=, POSTGRES_PASSWORD=, sslpassword=).
const SECRET_NAME = String.raw`[a-z0-9_.-]*?(?:password|passwd|pwd|secret|token|api[-_]?key)`;
const SECRET_PAIR = new RegExp(String.raw`(?<![a-z0-9_.-])(${SECRET_NAME})=([^\s&;'"]+)`, 'gi');
/** A query parameter whose value is a secret (tested alone, so no shared lastIndex). */
const SECRET_PARAM = new RegExp(`^${SECRET_NAME}$`, 'i');

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

export class Redactor {
  private readonly secrets = new Set<string>();

  /** Remember a secret value (and the forms it may be printed in) to mask it everywhere. */
  add(value: string | undefined): void {
    if (!value || value.length < 3) return; // masking "a" or "" would shred every message
    this.secrets.add(value);
    this.secrets.add(encodeURIComponent(value));
    this.secrets.add(Buffer.from(value).toString('base64'));
  }

  /** Remember the password or token inside a URL or DSN. */
  addFromUrl(url: string | undefined): void {
    if (!url) return;
    try {
      const u = new URL(url);
      this.add(decodeURIComponent(u.password));
      if (!u.password && TOKEN_SCHEMES.test(`${u.protocol}//`)) this.add(decodeURIComponent(u.username));
      for (const [k, v] of u.searchParams) if (SECRET_PARAM.test(k)) this.add(v);
    } catch {
      /* not a URL: nothing to learn */
    }
  }

  text(value: string): string {
    let out = maskCredentials(value);
    // Longest first, so a secret that contains another is masked whole.
    for (const s of [...this.secrets].sort((a, b) => b.length - a.length)) {
      out = out.split(s).join(MASK);
    }
    return out;
  }

  /** Deep copy of a JSON-like value with every string redacted. */
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
}

const SECRET_KEY = /(token|password|passwd|secret|api[-_]?key|authorization|credential|cookie|session)/i;

/** Whether a field or variable name says its value is a secret (SFM_TOKEN, password, apiKey...). */
export function isSecretName(name: string): boolean {
  return SECRET_KEY.test(name);
}

/**
 * Teach a redactor every secret inside a configuration value: the values of secret-named fields
 * (token, password, apiKey, an Authorization header...) and the credentials of URLs and DSNs.
 */
export function learnSecrets(redactor: Redactor, value: unknown, key = ''): void {
  if (typeof value === 'string') {
    if (isSecretName(key)) redactor.add(value);
    if (value.includes('://') || value.includes('@')) redactor.addFromUrl(value);
    return;
  }
  if (Array.isArray(value)) return value.forEach((v) => learnSecrets(redactor, v, key));
  if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) learnSecrets(redactor, v, k);
  }
}
