// The one HTTP client of the project: checks and scenarios fetch through it, and judge what it
// returns elsewhere (Gatus keeps clients apart from conditions the same way). Every step is
// bounded: connect (TLS included), first byte, idle body, body size, and the caller's signal.
import { CERT_FILE_MAX_BYTES, readRegularFile } from '../read-file.js';
import { createServer } from 'node:net';
import type { Dispatcher } from 'undici';
import { abortable } from '../abortable.js';
import { loadUndici } from '../lazy-modules.js';
import { excerpt, maskCredentials } from '../redact.js';
import type { CheckOutcome, Unanswered } from '../check.js';
import { networkFailure, socketHost, unansweredFor } from './network.js';

export interface HttpRequest {
  url: string;
  method?: string;
  headers?: Record<string, string>;
  /** A JSON value to send (sets content-type), or a raw string. */
  json?: unknown;
  body?: string;
  timeoutMs: number;
  signal?: AbortSignal;
  tls?: { caFile?: string; insecure?: boolean };
  /** Follow up to this many redirects; 0 (the default) returns the 3xx as it is. */
  maxRedirects?: number;
  /** Fail when the body grows past this many bytes (default 1 MiB). */
  maxBodyBytes?: number;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  text: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: unknown;
  /**
   * The network exchange, from the request's first byte written on the socket to the response's
   * last byte read (the last request's, after redirects): the service's latency, free of module
   * loading and of other checks' work before the request was sent. Falls back to the whole call.
   */
  timings: { firstByteMs: number; totalMs: number };
}

/** A failure to get an answer, with a message that names the cause. */
export class HttpError extends Error {
  constructor(
    message: string,
    readonly code: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'HttpError';
  }
}

export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
/** undici's fast timers tick every half second and may be off by up to a second. */
const UNDICI_TIMER_SLACK_MS = 1000;

/** One line for a failed request: an HttpError already names the cause. */
export function describeHttpFailure(err: unknown): string {
  return maskCredentials(err instanceof HttpError ? err.message : `request failed: ${(err as Error)?.message ?? err}`);
}

// HttpError codes (undici's, or this file's own) of a request that got no answer at all.
// TIMEOUT also names a body that stalled after its headers: backing off from that one too is
// the cautious side.
const NO_ANSWER_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_SOCKET', 'TIMEOUT']);

/**
 * CheckOutcome.unanswered for a request to `url` that failed with `err`: where it got no answer
 * (refused, unresolved, no route, timed out, reset before any answer); undefined when the peer
 * answered something, or the request never left (an unreadable CA file).
 */
export function unansweredBy(err: unknown, url: string): Unanswered | undefined {
  if (!(err instanceof HttpError)) return undefined;
  const target = new URL(url);
  const host = socketHost(target);
  const port = Number(target.port) || (target.protocol === 'https:' ? 443 : 80);
  return unansweredFor(err.code, host, port) ?? (NO_ANSWER_CODES.has(err.code) ? { host, port, refused: false } : undefined);
}

/**
 * `: <reason>` for a message, from the field where a service puts its reason (or the whole
 * body): one line of at most 120 characters; empty when there is nothing to say.
 */
export function bodyReason(res: HttpResponse, reason: unknown): string {
  const text = typeof reason === 'string' ? reason : res.text;
  const line = text.replace(/\s+/g, ' ').trim();
  if (!line || line === '{}') return '';
  return `: ${excerpt(line, 117, '...')}`;
}

/**
 * A peer that cannot be reached, hangs or speaks something else fails every request the same
 * way: the failure of the first, in the order given (the order a person would check them), as
 * `<request>: <cause>`, with `unanswered` when it got no answer (every request went to `url`'s
 * host and port); undefined when every request got an answer.
 */
export function firstRequestFailure(
  requests: ReadonlyArray<readonly [string, PromiseSettledResult<HttpResponse>]>,
  url: string,
): CheckOutcome | undefined {
  const failed = requests.find(([, settled]) => settled.status === 'rejected');
  if (!failed) return undefined;
  const reason = (failed[1] as PromiseRejectedResult).reason;
  return { status: 'fail', message: `${failed[0]}: ${describeHttpFailure(reason)}`, unanswered: unansweredBy(reason, url) };
}

/** For requests that share one budget (a check's several requests): what is left of it, in ms. */
export function remainingBudget(timeoutMs: number): () => number {
  const deadline = performance.now() + timeoutMs;
  return () => Math.max(1, Math.round(deadline - performance.now()));
}

/** When one fetchHttp call's exchange happened (performance.now() times). */
interface Exchange {
  sentAt?: number;
  headersAt?: number;
  doneAt?: number;
}

/**
 * An interceptor that times the exchange through the request's own handler: undici calls
 * `onConnect` (`onRequestStart` in its newer API) just before it writes the request on the
 * socket, `onHeaders`/`onResponseStart` when the head is parsed and `onComplete`/`onResponseEnd`
 * on the last byte. Each hop of a redirect passes here; the first send and the last answer count.
 */
function timeExchange(exchange: Exchange): Dispatcher.DispatcherComposeInterceptor {
  const stamp = (fn: (...args: unknown[]) => unknown, mark: (now: number) => void) =>
    function (this: unknown, ...args: unknown[]) {
      mark(performance.now());
      return fn.apply(this, args);
    };
  const marks: Record<string, (now: number) => void> = {
    onConnect: (now) => (exchange.sentAt ??= now),
    onRequestStart: (now) => (exchange.sentAt ??= now),
    onHeaders: (now) => (exchange.headersAt = now),
    onResponseStart: (now) => (exchange.headersAt = now),
    onComplete: (now) => (exchange.doneAt = now),
    onResponseEnd: (now) => (exchange.doneAt = now),
  };
  return (dispatch) => (options, handler) =>
    dispatch(
      options,
      new Proxy(handler, {
        get(target, key, receiver) {
          const value = Reflect.get(target, key, receiver);
          if (typeof value !== 'function') return value;
          // Bound to the handler itself: undici's handlers keep their state in private fields.
          const mark = typeof key === 'string' ? marks[key] : undefined;
          return mark ? stamp(value.bind(target), mark) : value.bind(target);
        },
      }),
    );
}

// One agent per connect settings for the whole run, not one per request: 1000 checks on one
// origin then share a few kept-alive connections instead of opening (and tearing down) 1000.
// Every other bound stays per request (first byte, body idle time, body size, the signal).
// undici unrefs idle sockets, so a kept connection never holds the process open.
// The few most recently used are kept (a long-running process sees ever new timeouts when a
// deadline caps them); one that falls out is closed once its requests are done.
const agents = new Map<string, Dispatcher>();
const MAX_AGENTS = 8;
function agentFor(undici: typeof import('undici'), timeoutMs: number, ca: string | undefined, insecure: boolean): Dispatcher {
  const key = JSON.stringify([timeoutMs, ca ?? null, insecure]);
  let agent = agents.get(key);
  if (agent) agents.delete(key);
  else agent = new undici.Agent({ connect: { timeout: timeoutMs, ca, rejectUnauthorized: !insecure } });
  agents.set(key, agent);
  for (const [oldKey, old] of agents) {
    if (agents.size <= MAX_AGENTS) break;
    agents.delete(oldKey);
    old.close().catch(() => {});
  }
  return agent;
}

let warmed: Promise<unknown> | undefined;
const WARM_UP_MS = 250;

/**
 * Load undici ahead of the first request (a kind's `prepare` for HTTP checks), and make one
 * request to a throw-away server of our own on loopback: undici compiles its WASM HTTP parser
 * and V8 its request path on first use, which would otherwise block the event loop while other
 * checks' answers wait in their sockets. Best effort: a failure here only costs that warm-up.
 */
export function loadHttpClient(): Promise<unknown> {
  warmed ??= loadUndici().then(async (undici) => {
    await warmUp(undici).catch(() => {});
    return undici;
  });
  return warmed;
}

async function warmUp(undici: typeof import('undici')) {
  const server = createServer((socket) => {
    socket.on('error', () => {});
    socket.once('data', () => socket.end('HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n'));
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  // A short bound: on a starved machine the warm-up is given up, never waited for.
  const agent = new undici.Agent({ pipelining: 0, connect: { timeout: WARM_UP_MS }, headersTimeout: WARM_UP_MS, bodyTimeout: WARM_UP_MS });
  try {
    const res = await undici.request(`http://127.0.0.1:${port}/`, { dispatcher: agent, signal: AbortSignal.timeout(WARM_UP_MS) });
    await res.body.dump();
  } finally {
    await agent.destroy().catch(() => {});
    server.close();
  }
}

export async function fetchHttp(req: HttpRequest): Promise<HttpResponse> {
  const undici = await loadUndici();
  const url = new URL(req.url);
  const ca = req.tls?.caFile ? (await readRegularFile(req.tls.caFile, CERT_FILE_MAX_BYTES)).toString('utf8') : undefined;
  const exchange: Exchange = {};
  let dispatcher = agentFor(undici, req.timeoutMs, ca, !!req.tls?.insecure).compose(timeExchange(exchange));
  if (req.maxRedirects) {
    dispatcher = dispatcher.compose(undici.interceptors.redirect({ maxRedirections: req.maxRedirects }));
  }
  const timeout = AbortSignal.timeout(req.timeoutMs);
  const signal = req.signal ? AbortSignal.any([req.signal, timeout]) : timeout;
  const headers: Record<string, string> = { 'user-agent': 'soma-verify', ...req.headers };
  let body = req.body;
  if (req.json !== undefined) {
    body = JSON.stringify(req.json);
    headers['content-type'] ??= 'application/json';
  }
  const started = performance.now();
  let gotHeaders = false;
  try {
    // undici does not abort a request whose connection is still being set up (a TLS handshake
    // the peer never answers): it waits for its own connect timeout, which runs on coarse 500 ms
    // timers. Stop waiting when the signal aborts; destroying the agent then drops the socket.
    const res = await abortable(
      undici.request(url, {
        dispatcher,
        method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
        headers,
        body,
        signal,
        // undici runs these on coarse timers that may fire up to a second early or late: the
        // exact bound is `signal` above; these only back it up.
        headersTimeout: req.timeoutMs + UNDICI_TIMER_SLACK_MS,
        bodyTimeout: req.timeoutMs + UNDICI_TIMER_SLACK_MS,
      }),
      signal,
    );
    const headersAt = performance.now();
    gotHeaders = true;
    const raw = await readCapped(res.body, req.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES);
    const readAt = performance.now();
    const text = raw.toString('utf8');
    const from = exchange.sentAt ?? started;
    return {
      status: res.statusCode,
      headers: flattenHeaders(res.headers),
      body: raw,
      text,
      json: parseJson(text),
      timings: {
        firstByteMs: (exchange.headersAt ?? headersAt) - from,
        totalMs: (exchange.doneAt ?? readAt) - from,
      },
    };
  } catch (err) {
    throw describeFailure(err, url, req.timeoutMs, signal, req.signal, gotHeaders);
  }
}

async function readCapped(body: AsyncIterable<Buffer> & { destroy(): void }, cap: number) {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > cap) {
      body.destroy();
      throw new HttpError(`body larger than ${formatBytes(cap)}`, 'BODY_TOO_LARGE');
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function flattenHeaders(headers: Record<string, string | string[] | undefined>) {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) out[k] = String(v);
  return out;
}

function formatBytes(n: number) {
  return n % (1024 * 1024) === 0 ? `${n / 1024 / 1024} MiB` : `${n} bytes`;
}

/** Turn whatever undici or the socket threw into one line that names the cause. */
function describeFailure(
  err: unknown,
  url: URL,
  timeoutMs: number,
  signal: AbortSignal,
  callerSignal: AbortSignal | undefined,
  gotHeaders: boolean,
): HttpError {
  if (err instanceof HttpError) return err;
  const e = err as { code?: string; name?: string; message?: string; cause?: unknown };
  // A DOMException (timeouts, aborts) has a numeric legacy `code`: go by its name instead.
  const causeCode = (e.cause as { code?: unknown } | undefined)?.code;
  const code =
    (typeof e.code === 'string' ? e.code : undefined) ??
    (typeof causeCode === 'string' ? causeCode : undefined) ??
    e.name ??
    'ERROR';
  const where = url.host;
  const say = (message: string, c = code) => new HttpError(message, c, { cause: err });
  if (signal.aborted && callerSignal?.aborted && callerSignal.reason?.name !== 'TimeoutError')
    return say(`aborted before ${where} answered`, 'ABORTED');
  // Once the status line and headers have arrived the peer is an HTTP server: a broken body is
  // the connection's fault, whatever the parser calls it.
  if (gotHeaders) {
    if (code === 'TimeoutError' || code === 'AbortError' || code === 'UND_ERR_BODY_TIMEOUT')
      return say(`response body from ${where} incomplete after ${timeoutMs} ms`, 'TIMEOUT');
    if (code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' || code === 'HTTPParserError' || code === 'ECONNRESET' || code === 'UND_ERR_SOCKET')
      return say(`connection closed by ${where} before the whole body arrived`, 'RESET');
  }
  const network = networkFailure(code, where, url.hostname);
  if (network) return say(network.message);
  switch (code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
      return say(`connect to ${where} timed out after ${timeoutMs} ms`);
    case 'UND_ERR_HEADERS_TIMEOUT':
      return say(`no response from ${where} within ${timeoutMs} ms`);
    case 'UND_ERR_BODY_TIMEOUT':
      return say(`response body from ${where} stalled for ${timeoutMs} ms`);
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
    case 'EPIPE':
      return say(`connection reset by ${where}`);
    case 'HTTPParserError': // undici 7's parser error carries no code
    case 'HPE_INVALID_CONSTANT':
    case 'HPE_INVALID_VERSION':
    case 'HPE_INVALID_STATUS':
    case 'HPE_INVALID_HEADER_TOKEN':
    case 'HPE_CR_EXPECTED':
    case 'HPE_LF_EXPECTED':
    case 'HPE_PAUSED_H2_UPGRADE':
      return say(`not an HTTP server on ${where} (invalid response bytes)`, 'NOT_HTTP');
    case 'UND_ERR_MAX_REDIRECTIONS':
    case 'UND_ERR_REDIRECT':
      return say(`too many redirects from ${where}`);
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'CERT_HAS_EXPIRED':
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return say(`TLS certificate of ${where} not trusted (${code})`, 'TLS');
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
    case 'EPROTO':
      return say(`TLS handshake with ${where} failed: is it serving plain HTTP?`, 'TLS');
    case 'TimeoutError':
    case 'AbortError':
    case 'CheckAborted': // the signal fired while undici was still connecting
      return say(`no response from ${where} within ${timeoutMs} ms`, 'TIMEOUT');
  }
  if (/^ERR_SSL|SSL routines/i.test(`${code} ${e.message}`))
    return say(`TLS handshake with ${where} failed: ${e.message}`, 'TLS');
  return say(`request to ${where} failed: ${e.message ?? String(err)}`);
}
