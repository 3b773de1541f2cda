import http, { type ClientRequest, type IncomingMessage } from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import type { WebhookTarget } from './ssrf.ts';

/**
 * One webhook POST to the address `resolveWebhookTarget` pinned. The URL's name still goes in the
 * Host header and as the TLS server name (so certificates and virtual hosts work), but the socket
 * connects only to the judged address: a DNS answer that changes after the check (rebinding) is
 * never asked for. node's request() never follows redirects, so a 3xx to 169.254.169.254 is just a
 * status. The response body is the receiver's, possibly an echo of an internal page: read a little
 * so a well-behaved server can finish, then hang up, and never hand it to anyone.
 */

const MAX_DRAIN = 64 * 1024;

export interface PostRequest {
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
}

export interface PostResult {
  status: number;
  durationMs: number;
}

/** A `lookup` that answers every name with the pinned address, in both callback shapes: net asks
 * with `all: true` when autoSelectFamily (happy eyeballs, on by default) is in play. */
function pinnedLookup(target: WebhookTarget): LookupFunction {
  return (_name, options, callback) => {
    if (options.all) (callback as (err: null, a: { address: string; family: number }[]) => void)(null, [{ address: target.address, family: target.family }]);
    else callback(null, target.address, target.family);
  };
}

/** Caller headers over the defaults, case-insensitively; Host and Content-Length are ours. */
function headersFor(target: WebhookTarget, req: PostRequest): Record<string, string | number> {
  const out: Record<string, string | number> = { 'content-type': 'application/json', 'user-agent': 'Mailroom-Webhooks/1' };
  for (const [name, value] of Object.entries(req.headers)) out[name.toLowerCase()] = value;
  out['host'] = target.url.host; // name[:port] as in the URL, never the pinned address
  out['content-length'] = Buffer.byteLength(req.body);
  return out;
}

function open(target: WebhookTarget, req: PostRequest): ClientRequest {
  const { url } = target;
  const tls = url.protocol === 'https:';
  return (tls ? https : http).request({
    method: 'POST',
    hostname: target.host, // goes through `lookup`, which only ever answers the pinned address
    port: url.port || (tls ? 443 : 80),
    path: `${url.pathname}${url.search}`, // the fragment is never sent
    headers: headersFor(target, req),
    lookup: pinnedLookup(target),
    // Certificates are checked against the name, not the address; SNI must not be an IP (RFC 6066).
    servername: isIP(target.host) ? undefined : target.host,
    agent: false, // a fresh socket per attempt: no keep-alive pool shared across targets
  });
}

const timeoutError = (target: WebhookTarget, ms: number) =>
  Object.assign(new Error(`webhook POST to ${target.url.origin} timed out after ${ms} ms`), { code: 'ETIMEDOUT' });

/**
 * POST `body` to the pinned target. Resolves with the status of any answer (2xx or not, 3xx
 * included); rejects on a network error or when no status arrived within `timeoutMs`.
 */
export function postPinned(target: WebhookTarget, req: PostRequest): Promise<PostResult> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    let status = 0; // 0 until the response head arrives
    let settled = false;
    const settle = (err: Error | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      request.destroy(); // also destroys the response and the socket: nothing more is read
      if (err && !status) reject(err);
      else resolve({ status, durationMs: Math.round(performance.now() - started) });
    };
    const request = open(target, req);
    // One deadline for connect + send + response head; once a status is in, a slow body only
    // cuts the drain short — the receiver has answered.
    const timer = setTimeout(() => settle(timeoutError(target, req.timeoutMs)), req.timeoutMs);
    request.on('error', (err) => settle(err));
    request.on('response', (res: IncomingMessage) => {
      status = res.statusCode ?? 0;
      drain(res, () => settle(null));
    });
    request.end(req.body);
  });
}

/** Read and drop up to MAX_DRAIN bytes (plus the rest of the chunk that crosses it), then call
 * `done` (end, error, close or cap; `settle` makes repeats harmless). */
function drain(res: IncomingMessage, done: () => void): void {
  let seen = 0;
  res.on('data', (chunk: Buffer) => {
    seen += chunk.length;
    if (seen >= MAX_DRAIN) done();
  });
  res.on('end', done);
  res.on('error', done); // an aborted body after a status is still an answer
  res.on('close', done);
}
