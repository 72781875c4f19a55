// Option pieces that several check kinds share, declared once so they cannot drift apart.
import * as z from 'zod';

/** TLS trust for a client: a CA file to trust, or no verification at all. */
export const tlsOption = z
  .object({ caFile: z.string().min(1).optional(), insecure: z.boolean().optional() })
  .strict();
export type TlsOption = z.infer<typeof tlsOption>;

/** An http(s) URL. */
export const httpUrlOption = z.url({ protocol: /^https?$/ });

/** A bearer token (sent as `Authorization: Bearer <token>`); empty means none. */
export const tokenOption = z.string().optional();

/** Extra request headers. */
export const headersOption = z.record(z.string(), z.string());
