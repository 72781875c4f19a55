// The one HTTP client of the project: checks and scenarios fetch through it, and judge what it
// returns elsewhere (Gatus keeps clients apart from conditions the same way). Every step is
// bounded: the whole call (connect, TLS, first byte, body, redirects) by its timeout and the
// caller's signal, the body by its size, and a wrong-protocol peer's head by Node's parser, which
// refuses the first byte that is not HTTP and a head over 16 KiB.
//
// Node's own client (node:http), not undici: its parser is built into Node, where undici's is
// WebAssembly compiled on every run, which cost about 10 ms of each run's first request and a
// 30 MB peak of memory, and its library about as much to load again (issue 11).
// Taken when first used: with the HTTP thread (./http-thread.ts) the main thread never loads it.
import type { Agent, ClientRequest, IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { CERT_FILE_MAX_BYTES, readRegularFile } from '../read-file.js';
import { excerpt, maskCredentials } from '../redact.js';
import type { CheckOutcome, Unanswered } from '../check.js';
import { httpThread } from './http-thread.js';
import { networkFailure, noAnswer, socketHost, unansweredFor } from './network.js';

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

/** One line for a failed request: an HttpError already names the cause. */
export function describeHttpFailure(err: unknown): string {
  return maskCredentials(err instanceof HttpError ? err.message : `request failed: ${(err as Error)?.message ?? err}`);
}

// HttpError codes of a request that got no answer at all: no response within the timeout, or
// the connection reset before any. (A body cut or stalled after its head has its own codes.)
const NO_ANSWER_CODES = new Set(['TIMEOUT', 'RESET']);

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
  return unansweredFor(err.code, host, port) ?? (NO_ANSWER_CODES.has(err.code) ? noAnswer(host, port) : undefined);
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

/**
 * Connections kept alive across requests, per TLS settings (plain HTTP has one): 1000 checks on
 * one origin then share a few connections instead of opening 1000. Every bound stays per
 * request. Node's agents unref idle sockets, so a kept connection never holds the process open.
 * The few most recently used HTTPS agents are kept; one that falls out lets its connections go
 * as their requests end.
 */
const agents = new Map<string, Agent>();
const MAX_AGENTS = 8;
function agentFor(https: typeof import('node:https') | undefined, tls: TlsSettings): Agent {
  const key = https ? JSON.stringify([tls.ca ?? null, tls.rejectUnauthorized]) : 'http';
  let agent = agents.get(key);
  if (agent) agents.delete(key);
  else agent = new (https ?? process.getBuiltinModule('node:http')).Agent({ keepAlive: true, scheduling: 'lifo', ...(https ? tls : {}) });
  agents.set(key, agent);
  for (const [oldKey, old] of agents) {
    if (agents.size <= MAX_AGENTS) break;
    agents.delete(oldKey);
    retire(old);
  }
  return agent;
}

function retire(agent: Agent) {
  for (const sockets of Object.values(agent.freeSockets)) for (const socket of sockets ?? []) socket.destroy();
  agent.on('free', (socket: Socket) => socket.destroy());
}

/**
 * One bound for a whole fetchHttp call (redirects included): its timeout and the caller's
 * signal, without allocating an AbortSignal per request. `stop` ends the exchange in flight.
 */
class CallBound {
  stop?: (why: 'timeout' | 'aborted') => void;
  /** Set once the call is over its time or aborted, also between two requests of it. */
  ended?: 'timeout' | 'aborted';
  private timer: NodeJS.Timeout;
  private onAbort = () => this.end('aborted');
  constructor(
    timeoutMs: number,
    readonly caller: AbortSignal | undefined,
  ) {
    this.timer = setTimeout(() => this.end('timeout'), timeoutMs);
    caller?.addEventListener('abort', this.onAbort, { once: true });
  }
  private end(why: 'timeout' | 'aborted') {
    this.ended ??= why;
    this.stop?.(why);
  }
  dispose() {
    clearTimeout(this.timer);
    this.caller?.removeEventListener('abort', this.onAbort);
  }
}

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  /** performance.now() when the request went out on a connected socket, the head arrived, the body ended. */
  sentAt: number;
  headersAt: number;
  doneAt: number;
}

/** What an HTTPS connection trusts: its agent's settings, and a retry's that goes around the agent. */
interface TlsSettings {
  ca: string | undefined;
  rejectUnauthorized: boolean;
}

interface Exchange {
  url: URL;
  method: string;
  headers: Record<string, string>;
  body: string | undefined;
  agent: Agent;
  https: typeof import('node:https') | undefined;
  tls: TlsSettings;
  maxBodyBytes: number;
  timeoutMs: number;
}

/** An answer as it came off the wire, before decoding: what the HTTP thread hands back. */
export interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  timings: { firstByteMs: number; totalMs: number };
}

/**
 * One HTTP call, redirects included. Made on the HTTP thread when there is one (see
 * ./http-thread.ts: its event loop does nothing else, so the time it measures is the exchange's,
 * whatever CPU work the checks do meanwhile), else here.
 */
export async function fetchHttp(req: HttpRequest): Promise<HttpResponse> {
  const thread = httpThread();
  let raw: RawAnswer;
  if (thread) raw = await thread.exchange(req);
  else {
    raw = await exchangeHttp(req);
    // The exchange is timed; what follows (decoding, judging) is CPU work. Let the other
    // sockets' answers already waiting be read and timed first.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  const text = raw.body.toString('utf8');
  return { ...raw, text, json: parseJson(text) };
}

/** The exchange itself, in this thread: the HTTP thread runs this. */
export async function exchangeHttp(req: HttpRequest): Promise<RawAnswer> {
  let url = new URL(req.url);
  if (req.signal?.aborted) throw stopped('aborted', url, req.timeoutMs, req.signal, false);
  const tls: TlsSettings = {
    ca: req.tls?.caFile ? (await readRegularFile(req.tls.caFile, CERT_FILE_MAX_BYTES)).toString('utf8') : undefined,
    rejectUnauthorized: !req.tls?.insecure,
  };
  const headers: Record<string, string> = { 'user-agent': 'soma-verify', ...req.headers };
  let body = req.body;
  if (req.json !== undefined) {
    body = JSON.stringify(req.json);
    if (!Object.keys(headers).some((k) => k.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json';
  }
  let method = (req.method ?? 'GET').toUpperCase();
  const bound = new CallBound(req.timeoutMs, req.signal);
  const started = performance.now();
  let sentAt: number | undefined;
  try {
    for (let hop = 0; ; hop++) {
      const https = url.protocol === 'https:' ? process.getBuiltinModule('node:https') : undefined;
      const exchange: Exchange = {
        url,
        method,
        headers,
        body,
        agent: agentFor(https, tls),
        https,
        tls,
        maxBodyBytes: req.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
        timeoutMs: req.timeoutMs,
      };
      const answer = await exchangeOnce(exchange, bound);
      sentAt ??= answer.sentAt;
      const location = answer.headers.location;
      if (hop < (req.maxRedirects ?? 0) && REDIRECTS.has(answer.status) && location) {
        const next = new URL(location, url);
        if (next.origin !== url.origin) for (const name of Object.keys(headers)) if (!CROSS_ORIGIN_HEADERS.has(name.toLowerCase())) delete headers[name];
        // As browsers and fetch do: 303, and 301/302 after a POST, continue as a GET without a body.
        if (answer.status === 303 ? method !== 'HEAD' : (answer.status === 301 || answer.status === 302) && method === 'POST') {
          method = 'GET';
          body = undefined;
          for (const name of Object.keys(headers)) if (/^content-/i.test(name)) delete headers[name];
        }
        url = next;
        continue;
      }
      const from = sentAt ?? started;
      return {
        status: answer.status,
        headers: answer.headers,
        body: answer.body,
        timings: { firstByteMs: answer.headersAt - from, totalMs: answer.doneAt - from },
      };
    }
  } finally {
    bound.dispose();
  }
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/**
 * The only headers sent on to another origin after a redirect. Not fetch's rule (it drops only
 * Authorization): every header a config sets is treated as a secret (an API key in `x-api-key`),
 * and another origin is another party.
 */
const CROSS_ORIGIN_HEADERS = new Set(['accept', 'accept-language', 'user-agent', 'content-type', 'content-length']);

/**
 * One request and its whole answer, bounded by `bound`. A kept-alive connection that the server
 * closed just as it was reused fails before any answer: that request is sent again once on a
 * new connection (Node marks it `reusedSocket` for exactly this), for methods that are safe to repeat.
 */
async function exchangeOnce(exchange: Exchange, bound: CallBound): Promise<Answer> {
  try {
    return await requestOnce(exchange, bound);
  } catch (err) {
    const retry = err instanceof StaleConnection && (exchange.method === 'GET' || exchange.method === 'HEAD');
    if (!retry) throw err instanceof StaleConnection ? err.failure : err;
    return requestOnce(exchange, bound, true);
  }
}

class StaleConnection extends Error {
  constructor(readonly failure: HttpError) {
    super(failure.message);
  }
}

function requestOnce(exchange: Exchange, bound: CallBound, fresh = false): Promise<Answer> {
  const { url, method, headers, body, maxBodyBytes, timeoutMs } = exchange;
  return new Promise<Answer>((resolve, reject) => {
    if (bound.ended) return reject(stopped(bound.ended, url, timeoutMs, bound.caller, false));
    let settled = false;
    let response: IncomingMessage | undefined;
    let sentAt: number | undefined;
    let headersAt = 0;
    const options = {
      protocol: url.protocol,
      hostname: socketHost(url),
      port: url.port || undefined,
      path: `${url.pathname}${url.search}`,
      method,
      headers: body === undefined ? headers : { ...headers, 'content-length': String(Buffer.byteLength(body)) },
      agent: fresh ? false : exchange.agent,
      ...(fresh && exchange.https ? exchange.tls : {}),
    };
    const client: ClientRequest = (exchange.https ?? process.getBuiltinModule('node:http')).request(options);
    const finish = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      bound.stop = undefined;
      outcome();
    };
    const fail = (err: unknown) =>
      finish(() => {
        client.destroy();
        response?.destroy();
        const failure = describeFailure(err, url, timeoutMs, bound.caller, response !== undefined);
        const stale = client.reusedSocket && response === undefined && failure.code === 'RESET';
        reject(stale ? new StaleConnection(failure) : failure);
      });
    bound.stop = (why) => fail(stopped(why, url, timeoutMs, bound.caller, response !== undefined));
    client.on('error', fail);
    client.on('socket', (socket: Socket) => {
      const sent = () => (sentAt ??= performance.now());
      if (!socket.connecting) sent();
      else socket.once(exchange.https ? 'secureConnect' : 'connect', sent);
    });
    client.on('response', (res: IncomingMessage) => {
      headersAt = performance.now();
      response = res;
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBodyBytes) return fail(new HttpError(`body larger than ${formatBytes(maxBodyBytes)}`, 'BODY_TOO_LARGE'));
        chunks.push(chunk);
      });
      // The connection closed before the whole body: a reset, whichever event tells it.
      const cutShort = () => fail(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }));
      res.on('error', fail);
      res.on('aborted', cutShort);
      res.on('end', () => {
        const doneAt = performance.now();
        if (!res.complete) return cutShort();
        finish(() =>
          resolve({
            status: res.statusCode ?? 0,
            headers: flattenHeaders(res.headers),
            body: Buffer.concat(chunks),
            sentAt: sentAt ?? headersAt,
            headersAt,
            doneAt,
          }),
        );
      });
    });
    client.end(body);
  });
}

/** The failure for a call stopped by its timeout or by the caller's signal. */
function stopped(why: 'timeout' | 'aborted', url: URL, timeoutMs: number, caller: AbortSignal | undefined, gotHeaders: boolean): HttpError {
  const where = url.host;
  if (why === 'aborted' && caller?.reason?.name !== 'TimeoutError') return new HttpError(`aborted before ${where} answered`, 'ABORTED');
  return gotHeaders
    ? new HttpError(`response body from ${where} incomplete after ${timeoutMs} ms`, 'BODY_TIMEOUT')
    : new HttpError(`no response from ${where} within ${timeoutMs} ms`, 'TIMEOUT');
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

/** Turn whatever the socket, TLS or the HTTP parser threw into one line that names the cause. */
function describeFailure(err: unknown, url: URL, timeoutMs: number, caller: AbortSignal | undefined, gotHeaders: boolean): HttpError {
  if (err instanceof HttpError) return err;
  const e = err as { code?: unknown; message?: string };
  const code = typeof e.code === 'string' ? e.code : 'ERROR';
  const where = url.host;
  const say = (message: string, c = code) => new HttpError(message, c, { cause: err });
  if (caller?.aborted && caller.reason?.name !== 'TimeoutError') return say(`aborted before ${where} answered`, 'ABORTED');
  // Once the status line and headers have arrived the peer is an HTTP server: a broken body is
  // the connection's fault, whatever the parser calls it.
  if (gotHeaders && (code === 'ECONNRESET' || code === 'EPIPE' || code.startsWith('HPE_')))
    return say(`connection closed by ${where} before the whole body arrived`, 'BODY_CUT');
  const network = networkFailure(code, where, url.hostname);
  if (network) return say(network.message);
  if (code === 'ECONNRESET' || code === 'EPIPE') return say(`connection reset by ${where}`, 'RESET');
  // Node's parser (llhttp) names what it could not read; a peer whose head never ends is cut at
  // Node's 16 KiB header limit (HPE_HEADER_OVERFLOW), so a wrong-protocol flood stays bounded.
  if (code.startsWith('HPE_')) return say(`not an HTTP server on ${where} (invalid response bytes)`, 'NOT_HTTP');
  switch (code) {
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
  }
  if (/^ERR_SSL|SSL routines/i.test(`${code} ${e.message}`)) return say(`TLS handshake with ${where} failed: ${e.message}`, 'TLS');
  return say(`request to ${where} failed: ${e.message ?? String(err)}`);
}
