import { z } from 'zod';

/**
 * The agent-to-agent (a2a) format, version 1 (docs/a2a.md): an ordinary email whose
 * multipart/mixed body holds a human-readable text part and one `application/json` part named
 * `mailroom-a2a.json` carrying the envelope below. This module is pure (no I/O): it encodes an
 * envelope for sending, finds and validates one in a received message's parts, and says whether
 * the message's authentication verdicts make it trustworthy. It runs on the analysis threads too.
 */

export const A2A_VERSION = 1;
export const A2A_FILENAME = 'mailroom-a2a.json';
export const A2A_CONTENT_TYPE = 'application/json';
/** The payload, serialised as compact JSON, in UTF-8 bytes. */
export const MAX_PAYLOAD_BYTES = 256 * 1024;
/** The whole JSON part: the payload plus the envelope's other fields, which are short. */
export const MAX_PART_BYTES = MAX_PAYLOAD_BYTES + 8 * 1024;
/**
 * Nesting depth of the payload. JSON.parse copes with deep nesting, but every consumer that walks
 * the value recursively (ours included) would overflow its stack on a 100,000-deep array.
 */
export const MAX_DEPTH = 64;

// Intents and correlation ids end up in subjects, text and query strings: a small alphabet keeps
// them free of anything a header, a URL or a terminal would interpret.
export const INTENT_RE = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/;
export const CORRELATION_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{7,127}$/;

export type A2aType = 'request' | 'response';

/** What travels in the JSON part. Unknown extra fields are dropped (a later minor version may add some). */
export interface A2aEnvelope {
  mailroom_a2a: 1;
  type: A2aType;
  intent: string;
  payload: unknown;
  correlation_id: string;
  /** Requests: when the requester stops waiting (ISO 8601). */
  reply_expected_by?: string | null;
  /** Responses: the Message-ID of the request answered (also in the In-Reply-To header). */
  in_reply_to?: string | null;
}

const Envelope = z.object({
  mailroom_a2a: z.literal(A2A_VERSION),
  type: z.enum(['request', 'response']),
  intent: z.string().regex(INTENT_RE, 'intent: 1-128 characters of A-Z a-z 0-9 . _ : / -, starting with a letter or digit'),
  payload: z.unknown().refine((v) => v !== undefined, 'payload is required'),
  correlation_id: z.string().regex(CORRELATION_ID_RE, 'correlation_id: 8-128 characters of A-Z a-z 0-9 . _ : -'),
  reply_expected_by: z.iso.datetime({ offset: true }).nullable().optional(),
  in_reply_to: z.string().max(998).nullable().optional(),
});

/** A format problem, with the code the API answers with. */
export class A2aFormatError extends Error {
  readonly code: 'a2a_invalid' | 'a2a_payload_too_large';
  constructor(code: A2aFormatError['code'], message: string) {
    super(message);
    this.name = 'A2aFormatError';
    this.code = code;
  }
}

/**
 * PostgreSQL's jsonb refuses U+0000 and lone surrogates (a message carrying one could not be
 * stored), and deep nesting is refused for the reason at MAX_DEPTH. Returns what is wrong, or null.
 */
function unstorable(v: unknown, depth = 0): string | null {
  if (depth > MAX_DEPTH) return `payload nested deeper than ${MAX_DEPTH} levels`;
  if (typeof v === 'string') return v.includes('\u0000') ? 'payload contains U+0000' : v.isWellFormed() ? null : 'payload contains a lone surrogate';
  if (Array.isArray(v)) {
    for (const x of v) { const e = unstorable(x, depth + 1); if (e) return e; }
    return null;
  }
  if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) { const e = unstorable(k, depth + 1) ?? unstorable(x, depth + 1); if (e) return e; }
  }
  return null;
}

function validate(input: unknown): A2aEnvelope {
  const r = Envelope.safeParse(input);
  if (!r.success) {
    throw new A2aFormatError('a2a_invalid', r.error.issues.map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message)).join('; '));
  }
  const env = r.data as A2aEnvelope;
  const payloadBytes = Buffer.byteLength(JSON.stringify(env.payload));
  if (payloadBytes > MAX_PAYLOAD_BYTES) throw new A2aFormatError('a2a_payload_too_large', `payload is ${payloadBytes} bytes of JSON; the limit is ${MAX_PAYLOAD_BYTES}`);
  const bad = unstorable(env.payload);
  if (bad) throw new A2aFormatError('a2a_invalid', bad);
  // Canonical key order and no absent optional fields: the same envelope always gives the same
  // bytes, which is what lets an idempotent retry of a send hash to the same request.
  return {
    mailroom_a2a: 1, type: env.type, intent: env.intent, payload: env.payload, correlation_id: env.correlation_id,
    ...(env.reply_expected_by ? { reply_expected_by: new Date(env.reply_expected_by).toISOString() } : {}),
    ...(env.in_reply_to ? { in_reply_to: env.in_reply_to } : {}),
  };
}

/** The JSON part's bytes for an envelope; throws A2aFormatError when it breaks a rule. */
export function encodeA2a(input: Omit<A2aEnvelope, 'mailroom_a2a'> & { mailroom_a2a?: 1 }): Buffer {
  const env = validate({ mailroom_a2a: A2A_VERSION, ...input });
  const bytes = Buffer.from(`${JSON.stringify(env)}\n`);
  if (bytes.length > MAX_PART_BYTES) throw new A2aFormatError('a2a_payload_too_large', `the a2a part would be ${bytes.length} bytes; the limit is ${MAX_PART_BYTES}`);
  return bytes;
}

/** An a2a part's bytes → the envelope; throws A2aFormatError when they are not a valid one. */
export function decodeA2a(bytes: Buffer): A2aEnvelope {
  if (bytes.length > MAX_PART_BYTES) throw new A2aFormatError('a2a_payload_too_large', `the a2a part is ${bytes.length} bytes; the limit is ${MAX_PART_BYTES}`);
  let value: unknown;
  try {
    // fatal: bytes that are not UTF-8 are not JSON (RFC 8259 §8.1), rather than U+FFFD in a payload.
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    throw new A2aFormatError('a2a_invalid', `the a2a part is not JSON: ${String((err as Error).message).slice(0, 120)}`);
  }
  return validate(value);
}

export interface PartLike { filename: string | null; content_type: string; content: Buffer }

const isJsonPart = (p: PartLike) => p.content_type.split(';')[0].trim().toLowerCase() === A2A_CONTENT_TYPE;

/**
 * The a2a envelope of a message, from its parts (mailparser's attachments). A part is an a2a part
 * when it is application/json and either carries the reserved name or is a JSON object with a
 * `mailroom_a2a` member; any other JSON attachment is ordinary content and ignored. An a2a part that
 * is invalid, or more than one, yields no envelope and a warning (`a2a_invalid: …`): an agent must
 * never act on half-understood or ambiguous instructions.
 */
export function findA2a(parts: readonly PartLike[]): { envelope: A2aEnvelope | null; warning: string | null } {
  const candidates = parts.filter((p) => isJsonPart(p) && (p.filename === A2A_FILENAME || claimsA2a(p.content)));
  if (!candidates.length) return { envelope: null, warning: null };
  if (candidates.length > 1) return { envelope: null, warning: `a2a_invalid: ${candidates.length} a2a parts in one message` };
  try {
    return { envelope: decodeA2a(candidates[0].content), warning: null };
  } catch (err) {
    // The message may quote the sender's bytes (V8's JSON.parse errors do): no control characters
    // or lone surrogates, which the jsonb column of warnings could not hold.
    // eslint-disable-next-line no-control-regex
    const why = String((err as Error).message).replace(/[\u0000-\u001f\u007f]/g, ' ').toWellFormed().slice(0, 300);
    return { envelope: null, warning: `${err instanceof A2aFormatError ? err.code : 'a2a_invalid'}: ${why}` };
  }
}

/** An unnamed JSON part claims to be a2a when its top-level object has the marker member. */
function claimsA2a(content: Buffer): boolean {
  // Cheap test first: most JSON attachments are not a2a, and parsing a large one for nothing is waste.
  if (content.length > MAX_PART_BYTES || !content.includes('"mailroom_a2a"')) return false;
  try {
    const v = JSON.parse(content.toString('utf8'));
    return Boolean(v && typeof v === 'object' && !Array.isArray(v) && 'mailroom_a2a' in v);
  } catch {
    return false;
  }
}

// ---- Trust ----

/** The subset of security.auth (intel/auth.ts) that decides trust. */
export interface AuthLike {
  dkim: { result: string; domain: string | null; aligned: boolean }[];
  dmarc: { result: string; domain: string | null };
}

export interface A2aSignal { kind: string; evidence: string }

/** What the message JSON shows as `a2a` (and what the `messages.a2a` column holds). */
export interface A2aInfo {
  type: A2aType;
  intent: string;
  payload: unknown;
  correlation_id: string;
  reply_expected_by: string | null;
  in_reply_to: string | null;
  /**
   * Received mail: true only when a DKIM signature aligned with the From domain passed and DMARC
   * passed, so the From domain really sent these bytes, payload included. null for mail Mailroom sent.
   */
  authenticated: boolean | null;
  /** The From domain that authenticated it, when authenticated. */
  authenticated_domain: string | null;
  /** Why it is not authenticated (empty when it is). */
  signals: A2aSignal[];
}

/**
 * Whether a received a2a message can be trusted. SPF is not enough, even aligned: it vouches for
 * the connecting host, not for the bytes, and every tenant of a shared sending service (or, in the
 * tests, every process on loopback) passes it. DKIM aligned with From covers the body, so the
 * payload is what the From domain's key signed; DMARC pass says the From domain is the one that
 * signed. `auth` null (verdicts were not computed) is never trusted.
 */
export function a2aTrust(auth: AuthLike | null | undefined): Pick<A2aInfo, 'authenticated' | 'authenticated_domain' | 'signals'> {
  if (!auth) return { authenticated: false, authenticated_domain: null, signals: [{ kind: 'no_auth_verdict', evidence: 'authentication verdicts were not computed for this message' }] };
  const signals: A2aSignal[] = [];
  const aligned = auth.dkim.filter((d) => d.result === 'pass' && d.aligned);
  if (!aligned.length) {
    const seen = auth.dkim.map((d) => `${d.result}${d.domain ? ` (${d.domain})` : ''}${d.result === 'pass' && !d.aligned ? ' not aligned' : ''}`).join(', ');
    signals.push({ kind: 'dkim_not_aligned_pass', evidence: auth.dkim.length ? `dkim: ${seen}`.slice(0, 200) : 'no DKIM signature' });
  }
  if (auth.dmarc.result !== 'pass') signals.push({ kind: 'dmarc_not_pass', evidence: `dmarc=${auth.dmarc.result}${auth.dmarc.domain ? ` for ${auth.dmarc.domain}` : ''}` });
  return signals.length
    ? { authenticated: false, authenticated_domain: null, signals }
    : { authenticated: true, authenticated_domain: auth.dmarc.domain, signals: [] };
}

/** The column value for a message carrying `env`; `auth` undefined for mail Mailroom sent. */
export function a2aInfo(env: A2aEnvelope, auth?: AuthLike | null): A2aInfo {
  const trust = auth === undefined ? { authenticated: null, authenticated_domain: null, signals: [] } : a2aTrust(auth);
  return {
    type: env.type, intent: env.intent, payload: env.payload, correlation_id: env.correlation_id,
    reply_expected_by: env.reply_expected_by ?? null, in_reply_to: env.in_reply_to ?? null, ...trust,
  };
}

/**
 * The text part: what a person (or an agent without a2a support) reading the mail sees. States
 * what the message is and where the machine-readable part is, and shows the payload up to a size.
 */
export function a2aText(env: A2aEnvelope, note?: string): string {
  const shown = JSON.stringify(env.payload, null, 2) ?? 'null';
  const cap = 4000;
  return [
    ...(note ? [note, ''] : []),
    `This is an agent-to-agent ${env.type} (Mailroom a2a v${A2A_VERSION}).`,
    `Intent: ${env.intent}`,
    `Correlation id: ${env.correlation_id}`,
    ...(env.reply_expected_by ? [`Reply expected by: ${env.reply_expected_by}`] : []),
    `The machine-readable ${env.type} is the attached ${A2A_FILENAME}.`,
    '',
    'Payload:',
    shown.length > cap ? `${shown.slice(0, cap)}\n… (${shown.length - cap} more characters in ${A2A_FILENAME})` : shown,
    '',
  ].join('\n');
}
