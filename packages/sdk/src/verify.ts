import { WebhookVerificationError } from './errors.ts';
import type { WebhookPayload } from './types.ts';

/**
 * Standard Webhooks verification (standardwebhooks.com), with crypto.subtle only:
 *   webhook-id, webhook-timestamp (unix seconds), webhook-signature: "v1,<base64>" (space-separated,
 *   several during a secret rotation), each an HMAC-SHA256 over `${id}.${timestamp}.${body}` keyed
 *   with the base64 bytes after "whsec_".
 */

export type WebhookHeaders = Headers | Record<string, string | string[] | undefined | null>;

export interface VerifyWebhookOptions {
  /** How far the timestamp may be from now, in either direction (default 300 s). */
  toleranceSeconds?: number;
  /** "Now", for tests (default the current time). */
  now?: Date | number;
}

const SECRET_PREFIX = 'whsec_';
const encoder = new TextEncoder();

function header(headers: WebhookHeaders, name: string): string | undefined {
  if (typeof (headers as Headers).get === 'function' && typeof (headers as Headers).has === 'function') {
    return (headers as Headers).get(name) ?? undefined;
  }
  const rec = headers as Record<string, string | string[] | undefined | null>;
  for (const [k, v] of Object.entries(rec)) {
    if (k.toLowerCase() !== name || v == null) continue;
    return Array.isArray(v) ? v.join(' ') : v;
  }
  return undefined;
}

export function base64ToBytes(b64: string): Uint8Array {
  const normalized = b64.replace(/-/g, '+').replace(/_/g, '/');
  const bin = atob(normalized); // throws on anything that is not base64
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function bytesToBase64(bytes: Uint8Array): string {
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

/** Equal without an early exit: the time taken does not depend on where two signatures differ. */
function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false; // an HMAC's length is public
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

function secretKey(secret: string): Uint8Array {
  if (typeof secret !== 'string' || !secret) throw new TypeError('verifyWebhook: the secret is empty');
  try {
    const key = base64ToBytes(secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret);
    if (!key.length) throw new Error('empty');
    return key;
  } catch {
    throw new TypeError('verifyWebhook: the secret is not "whsec_" followed by base64');
  }
}

async function hmacSha256(key: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
  const k = await crypto.subtle.importKey('raw', key as Uint8Array<ArrayBuffer>, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return new Uint8Array(await crypto.subtle.sign('HMAC', k, data as Uint8Array<ArrayBuffer>));
}

/**
 * Checks a webhook delivery and returns its parsed body. Pass the body exactly as received (the
 * raw text or bytes, before any JSON parsing), every secret that may have signed it (the new and
 * the old during a rotation), and the request's headers (a `Headers`, or a plain object such as
 * node's `req.headers`). Throws `WebhookVerificationError` when a header is missing, the timestamp is
 * outside the tolerance, or no signature matches any secret.
 */
export async function verifyWebhook<T = WebhookPayload>(
  headers: WebhookHeaders,
  body: string | Uint8Array | ArrayBuffer,
  secret: string | string[],
  options: VerifyWebhookOptions = {},
): Promise<T> {
  const secrets = (Array.isArray(secret) ? secret : [secret]);
  if (!secrets.length) throw new TypeError('verifyWebhook: no secret given');
  const keys = secrets.map(secretKey);

  const id = header(headers, 'webhook-id');
  const timestamp = header(headers, 'webhook-timestamp');
  const signatures = header(headers, 'webhook-signature');
  if (!id || !timestamp || !signatures) throw new WebhookVerificationError('missing webhook-id, webhook-timestamp or webhook-signature header');

  const tsText = timestamp.trim();
  if (!/^\d{1,15}$/.test(tsText)) throw new WebhookVerificationError('invalid webhook-timestamp');
  const ts = Number(tsText);
  const now = Math.floor((options.now === undefined ? Date.now() : +options.now) / 1000);
  const tolerance = options.toleranceSeconds ?? 300;
  if (ts < now - tolerance) throw new WebhookVerificationError('webhook-timestamp is too old');
  if (ts > now + tolerance) throw new WebhookVerificationError('webhook-timestamp is in the future');

  const bodyBytes = typeof body === 'string' ? encoder.encode(body) : body instanceof Uint8Array ? body : new Uint8Array(body);
  const prefix = encoder.encode(`${id}.${tsText}.`); // signed as sent
  const signed = new Uint8Array(prefix.length + bodyBytes.length);
  signed.set(prefix, 0);
  signed.set(bodyBytes, prefix.length);

  const given: Uint8Array[] = [];
  for (const part of signatures.trim().split(/\s+/)) {
    const comma = part.indexOf(',');
    if (comma < 0 || part.slice(0, comma) !== 'v1') continue; // other schemes (v1a, …) are not ours to check
    try { given.push(base64ToBytes(part.slice(comma + 1))); } catch { /* not base64: cannot match */ }
  }
  if (!given.length) throw new WebhookVerificationError('no v1 signature in webhook-signature');

  let ok = false;
  for (const key of keys) {
    const expected = await hmacSha256(key, signed);
    // Compare against every signature (no early exit) so timing says nothing about which one matched.
    for (const sig of given) ok = timingSafeEqual(expected, sig) || ok;
  }
  if (!ok) throw new WebhookVerificationError('no matching signature');

  const text = typeof body === 'string' ? body : new TextDecoder().decode(bodyBytes);
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new WebhookVerificationError('the body is not JSON');
  }
}
