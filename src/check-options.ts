// Option pieces that several check kinds share, declared once so they cannot drift apart, and the
// wording of every schema message that does not have one of its own.
import * as v from 'valibot';

// valibot's defaults read "Invalid key: Expected never but received "x"": say it as a person would.
v.setGlobalMessage((issue) => {
  const got = `got ${issue.received}`;
  if (issue.type.endsWith('object') && issue.expected === 'never') return `unknown key ${issue.received}`;
  if (issue.kind === 'schema' && issue.received === 'undefined') return 'required';
  if (issue.type === 'integer') return `expected a whole number, ${got}`;
  if (issue.type.endsWith('_length')) return `expected a length ${issue.expected}, ${got}`;
  if (issue.type.endsWith('_value')) return `expected a value ${issue.expected}, ${got}`;
  return `expected ${issue.expected === 'Object' ? 'an object' : issue.expected}, ${got}`;
});

/** TLS trust for a client: a CA file to trust, or no verification at all. */
export const tlsOption = v.strictObject({ caFile: v.optional(v.pipe(v.string(), v.minLength(1))), insecure: v.optional(v.boolean()) });
export type TlsOption = v.InferOutput<typeof tlsOption>;

/** Whether `text` is an absolute http:// or https:// URL. */
export function isHttpUrl(text: string): boolean {
  try {
    return /^https?:$/.test(new URL(text).protocol);
  } catch {
    return false;
  }
}

/** An http(s) URL. */
export const httpUrlOption = v.pipe(v.string(), v.check(isHttpUrl, 'not an http(s) URL'));

/** A bearer token (sent as `Authorization: Bearer <token>`); empty means none. */
export const tokenOption = v.optional(v.string());

/** Extra request headers. */
export const headersOption = v.record(v.string(), v.string());
