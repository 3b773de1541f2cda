import { createHash, randomBytes } from 'node:crypto';
import type { Principal } from '../auth/scopes.ts';
import { MailroomError } from '../errors.ts';
import { HELD } from '../intel/policy.ts';
import type { Messages } from '../messages/messages.ts';
import type { Outbox } from '../outbound/outbox.ts';
import { A2A_CONTENT_TYPE, A2A_FILENAME, A2aFormatError, a2aText, encodeA2a, type A2aEnvelope, type A2aInfo } from './format.ts';

/**
 * Agent-to-agent email on top of the outbox: a request is a `send`, a response is a `reply` in the
 * request's thread, each with the a2a JSON part as an attachment composed by MailComposer like any
 * other. So idempotency, DKIM signing, rate limits, suppressions and the durable outbox are the
 * sending path's own; nothing here builds MIME or writes rows.
 */
export interface A2aRequestInput {
  to: string[];
  intent: string;
  payload: unknown;
  reply_expected_by?: string;
  /** Default: derived from the idempotency key when there is one (so a retry is the same request), else random. */
  correlation_id?: string;
  subject?: string;
  /** A note for human readers, put above the generated text. */
  text?: string;
  idempotency_key?: string;
  trace_id?: string;
  metadata?: Record<string, unknown>;
}

export interface A2aRespondInput {
  payload: unknown;
  /** Default: the request's intent. */
  intent?: string;
  text?: string;
  idempotency_key?: string;
  trace_id?: string;
}

type Sent = Awaited<ReturnType<Outbox['send']>>;

/** The format's refusals as API errors (400/413), before anything is stored. */
function encode(env: Omit<A2aEnvelope, 'mailroom_a2a'>): Buffer {
  try {
    return encodeA2a(env);
  } catch (err) {
    if (!(err instanceof A2aFormatError)) throw err;
    throw new MailroomError(err.code === 'a2a_payload_too_large' ? 'a2a_payload_too_large' : 'invalid_request', err.message);
  }
}

const part = (json: Buffer) => ({ filename: A2A_FILENAME, content_type: A2A_CONTENT_TYPE, content: json.toString('base64') });

export class A2a {
  readonly #outbox: Outbox;
  readonly #messages: Messages;

  constructor(deps: { outbox: Outbox; messages: Messages }) {
    this.#outbox = deps.outbox;
    this.#messages = deps.messages;
  }

  /** `POST /v1/inboxes/{id}/a2a/requests`. */
  async request(p: Principal, inboxId: string, input: A2aRequestInput, headerKey?: string): Promise<Sent & { correlation_id: string }> {
    const key = headerKey ?? input.idempotency_key;
    const correlation_id = input.correlation_id
      // The same key must compose the same bytes, or the outbox would see a different request (409).
      ?? (key ? `a2a_${createHash('sha256').update(`${inboxId}\n${key}`).digest('hex').slice(0, 32)}` : `a2a_${randomBytes(16).toString('hex')}`);
    const env = { type: 'request' as const, intent: input.intent, payload: input.payload, correlation_id, reply_expected_by: input.reply_expected_by ?? null };
    const json = encode(env);
    const sent = await this.#outbox.send(p, inboxId, {
      to: input.to,
      subject: input.subject ?? `[a2a] ${input.intent}`,
      text: a2aText(JSON.parse(json.toString('utf8')), input.text),
      attachments: [part(json)],
      idempotency_key: input.idempotency_key,
      trace_id: input.trace_id,
      metadata: input.metadata,
    }, headerKey);
    // A replay answers with what was sent the first time, so the id is read from the stored message.
    return { ...sent, correlation_id: (sent.message.a2a as A2aInfo | null)?.correlation_id ?? correlation_id };
  }

  /**
   * `POST /v1/messages/{id}/a2a/respond`: a reply in the request's thread carrying its correlation
   * id. Only an authenticated inbound request can be answered: answering a forged one would send
   * the response (and whatever it discloses) to whoever the forger named. Without a key of the
   * caller's the key is derived from the request, so one request gets one response however often
   * an agent retries.
   */
  async respond(p: Principal, messageId: string, input: A2aRespondInput, headerKey?: string): Promise<Sent & { correlation_id: string }> {
    const parent = await this.#messages.get(p, messageId);
    const req = parent.a2a as A2aInfo | null;
    if (!req || parent.direction !== 'inbound' || req.type !== 'request') {
      throw new MailroomError('a2a_not_a_request', `message ${messageId} is not a received a2a request`);
    }
    // Held mail reaches no agent until a person released it (intel/policy.ts); nor may it be answered.
    if (parent.disposition && (HELD as readonly string[]).includes(parent.disposition)) {
      throw new MailroomError('conflict', `message ${messageId} is held (${parent.disposition}); release it before answering`);
    }
    if (req.authenticated !== true) {
      throw new MailroomError('a2a_unauthenticated', `the a2a request in message ${messageId} is not authenticated (${req.signals.map((s) => s.kind).join(', ') || 'no verdict'}); it must not be answered`);
    }
    const env = { type: 'response' as const, intent: input.intent ?? req.intent, payload: input.payload, correlation_id: req.correlation_id, in_reply_to: parent.message_id };
    const json = encode(env);
    const sent = await this.#outbox.reply(p, messageId, {
      text: a2aText(JSON.parse(json.toString('utf8')), input.text),
      attachments: [part(json)],
      idempotency_key: input.idempotency_key ?? (headerKey ? undefined : `a2a-response:${messageId}`),
      trace_id: input.trace_id,
    }, false, headerKey);
    return { ...sent, correlation_id: req.correlation_id };
  }
}
