import { MailroomApiError, MailroomConnectionError, MailroomTimeoutError } from './errors.ts';
import type { Problem } from './types.ts';

/**
 * The HTTP core: one place for authentication, timeouts, retries and error documents. Web-standard
 * APIs only (fetch, Headers, URL, AbortController), so it runs in Node, Deno, Bun, Workers and
 * browsers alike.
 */

export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

export interface ClientOptions {
  /** Where Mailroom listens, e.g. "http://127.0.0.1:8080" (a path prefix is kept). */
  baseUrl: string;
  /** A bearer token, "mr_…". */
  token: string;
  /** A fetch to use instead of the global one (a proxy, a test double, a Workers service binding). */
  fetch?: FetchLike;
  /** Retries after a network error, 429, 502, 503 or 504 (default 2). */
  maxRetries?: number;
  /** Per attempt, until the whole response body has arrived (default 60 000 ms). */
  timeoutMs?: number;
  /** Extra headers on every request. */
  headers?: Record<string, string>;
}

/** Per-call options, the last argument of every method. */
export interface RequestOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
  maxRetries?: number;
  headers?: Record<string, string>;
}

export type QueryValue = string | number | boolean | Date | string[] | null | undefined;

/**
 * How a request may be retried:
 * - `idempotent`: repeating it cannot do anything twice (GET, DELETE, PATCH, and POSTs carrying
 *   an Idempotency-Key or another natural key): retried on network errors, timeouts, 429, 502-504.
 * - `unsafe`: retried only when the connection could not even be opened (the request never left);
 *   never once any answer, or part of one, came back, and never after a timeout.
 */
export type RetryMode = 'idempotent' | 'unsafe';

export interface CoreRequest {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  path: string;
  query?: Record<string, QueryValue>;
  /** Sent as JSON, unless `contentType` is set: then it must be a string, sent as is. */
  body?: unknown;
  /** The Content-Type of a text body (a YAML campaign file, a CSV lead list). */
  contentType?: string;
  headers?: Record<string, string>;
  retry?: RetryMode;
  responseType?: 'json' | 'bytes';
  options?: RequestOptions;
}

export interface CoreResponse<T> {
  data: T;
  status: number;
  headers: Headers;
}

const RETRY_STATUSES = new Set([429, 502, 503, 504]);
/** A Retry-After longer than this is not waited for: the error goes to the caller. */
const MAX_RETRY_AFTER_MS = 60_000;
/** Failures that happen before a connection exists: the request cannot have reached the server. */
const CONNECT_FAILURES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);

export const SDK_VERSION = '0.1.0';

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const onAbort = () => { clearTimeout(t); reject(abortReason(signal!)); };
    const t = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve(); }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('This operation was aborted', 'AbortError');
}

/** Exponential backoff with jitter: 0.5 s, 1 s, 2 s, … capped at 8 s, each minus up to a quarter. */
export function backoffMs(attempt: number, baseMs = 500, capMs = 8_000): number {
  const d = Math.min(baseMs * 2 ** attempt, capMs);
  return Math.round(d * (1 - Math.random() * 0.25));
}

/** Retry-After in milliseconds (delta-seconds or an HTTP date), or null. */
export function retryAfterMs(headers: Headers, now = Date.now()): number | null {
  const v = headers.get('retry-after');
  if (!v) return null;
  if (/^\s*\d+(\.\d+)?\s*$/.test(v)) return Math.round(Number(v) * 1000);
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

function errorCode(err: unknown): string | undefined {
  for (let e: any = err, depth = 0; e && depth < 4; e = e.cause, depth++) {
    if (typeof e.code === 'string') return e.code;
  }
  return undefined;
}

/** A signal that aborts when the caller's does or when `timeoutMs` passes; `timedOut()` tells which. */
function attemptSignal(user: AbortSignal | undefined, timeoutMs: number) {
  const ac = new AbortController();
  let timedOut = false;
  const onAbort = () => ac.abort(abortReason(user!));
  if (user) {
    if (user.aborted) ac.abort(abortReason(user));
    else user.addEventListener('abort', onAbort, { once: true });
  }
  const timer = timeoutMs > 0 && Number.isFinite(timeoutMs)
    ? setTimeout(() => { timedOut = true; ac.abort(new DOMException(`no response within ${timeoutMs} ms`, 'TimeoutError')); }, timeoutMs)
    : undefined;
  return {
    signal: ac.signal,
    timedOut: () => timedOut,
    done: () => { clearTimeout(timer); user?.removeEventListener('abort', onAbort); },
  };
}

function queryString(query: Record<string, QueryValue> | undefined): string {
  if (!query) return '';
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null) continue;
    if (Array.isArray(v)) { if (v.length) params.set(k, v.join(',')); }
    else params.set(k, v instanceof Date ? v.toISOString() : String(v));
  }
  const s = params.toString();
  return s ? `?${s}` : '';
}

/** A path segment from an id or name, encoded so it cannot change the path. */
export const seg = (s: string): string => {
  if (typeof s !== 'string' || s === '') throw new TypeError('an id is required');
  return encodeURIComponent(s);
};

export class Core {
  readonly baseUrl: string;
  readonly maxRetries: number;
  readonly timeoutMs: number;
  readonly #token: string;
  readonly #fetch: FetchLike;
  readonly #headers: Record<string, string>;

  constructor(options: ClientOptions) {
    if (!options || typeof options.baseUrl !== 'string' || !options.baseUrl) throw new TypeError('Mailroom: baseUrl is required');
    if (typeof options.token !== 'string' || !options.token) throw new TypeError('Mailroom: token is required');
    this.baseUrl = new URL(options.baseUrl).toString().replace(/\/+$/, '');
    this.#token = options.token;
    // Never call the global fetch as a method of something else: Workers and browsers throw "Illegal invocation".
    this.#fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.maxRetries = Math.max(0, options.maxRetries ?? 2);
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.#headers = { ...options.headers };
  }

  url(path: string, query?: Record<string, QueryValue>): string {
    return `${this.baseUrl}${path}${queryString(query)}`;
  }

  headers(extra?: Record<string, string>): Headers {
    const h = new Headers(this.#headers);
    h.set('authorization', `Bearer ${this.#token}`);
    if (!h.has('accept')) h.set('accept', 'application/json');
    for (const [k, v] of Object.entries(extra ?? {})) h.set(k, v);
    return h;
  }

  /** A plain fetch with the client's authentication, for the event stream (which has its own reconnects). */
  fetch(url: string, init: RequestInit): Promise<Response> {
    return this.#fetch(url, init);
  }

  async request<T>(req: CoreRequest): Promise<CoreResponse<T>> {
    const opts = req.options ?? {};
    const url = this.url(req.path, req.query);
    const maxRetries = Math.max(0, opts.maxRetries ?? this.maxRetries);
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    const mode = req.retry ?? (req.method === 'POST' ? 'unsafe' : 'idempotent');
    if (req.contentType !== undefined && typeof req.body !== 'string') throw new TypeError(`${req.method} ${req.path}: the ${req.contentType} body must be a string`);
    const body = req.body === undefined ? undefined : req.contentType !== undefined ? req.body as string : JSON.stringify(req.body);

    for (let attempt = 0; ; attempt++) {
      const headers = this.headers({ ...req.headers, ...opts.headers });
      if (body !== undefined) headers.set('content-type', req.contentType ?? 'application/json');
      if (req.responseType === 'bytes') headers.set('accept', '*/*');
      const a = attemptSignal(opts.signal, timeoutMs);
      let res: Response;
      let payload: ArrayBuffer;
      try {
        res = await this.#fetch(url, { method: req.method, headers, body, signal: a.signal });
        // The body is read under the same timeout: a response that stalls halfway is a failed attempt.
        payload = await res.arrayBuffer();
      } catch (err) {
        if (opts.signal?.aborted) throw abortReason(opts.signal);
        const timedOut = a.timedOut();
        const code = errorCode(err);
        const retryable = mode === 'idempotent' || (!timedOut && code !== undefined && CONNECT_FAILURES.has(code));
        if (retryable && attempt < maxRetries) {
          await sleep(backoffMs(attempt), opts.signal);
          continue;
        }
        const what = `${req.method} ${req.path}`;
        if (timedOut) throw new MailroomTimeoutError(`${what}: no response within ${timeoutMs} ms${attempt ? ` (${attempt + 1} attempts)` : ''}`, { cause: err });
        throw new MailroomConnectionError(`${what}: ${(err as Error)?.message ?? err}${code ? ` (${code})` : ''}${attempt ? ` (${attempt + 1} attempts)` : ''}`, { cause: err });
      } finally {
        a.done();
      }

      if (res.ok) {
        if (req.responseType === 'bytes') return { data: new Uint8Array(payload) as T, status: res.status, headers: res.headers };
        const text = new TextDecoder().decode(payload);
        return { data: (text ? JSON.parse(text) : undefined) as T, status: res.status, headers: res.headers };
      }

      if (mode === 'idempotent' && RETRY_STATUSES.has(res.status) && attempt < maxRetries) {
        const wait = retryAfterMs(res.headers);
        if (wait === null || wait <= MAX_RETRY_AFTER_MS) {
          await sleep(wait ?? backoffMs(attempt), opts.signal);
          continue;
        }
      }
      throw apiError(res, payload);
    }
  }
}

export function apiError(res: Response, payload: ArrayBuffer | string): MailroomApiError {
  const text = typeof payload === 'string' ? payload : new TextDecoder().decode(payload);
  let problem: Partial<Problem> | null = null;
  try {
    const parsed = JSON.parse(text);
    if (parsed && typeof parsed === 'object') problem = parsed;
  } catch { /* not a problem document */ }
  return new MailroomApiError(res.status, problem, res.headers, problem ? undefined : text.slice(0, 200) || res.statusText || undefined);
}
