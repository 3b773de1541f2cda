import { seg, type Core, type RequestOptions } from './core.ts';
import { A2aTimeoutError } from './errors.ts';
import type { Events } from './events.ts';
import type { Inboxes } from './inboxes.ts';
import type { Messages } from './messages.ts';
import type { A2aInfo, Message, OutboundMessage } from './types.ts';

/**
 * Agent-to-agent email (docs/a2a.md): a request is an email with a JSON part, the response a reply
 * in its thread carrying the same correlation id. Only authenticated mail counts on the receiving
 * side (DKIM aligned with From and DMARC pass), so a forged response never resolves a request and a
 * forged request never reaches `requests()`.
 *
 *   // the requester
 *   const slot = await mr.a2a.request(inbox.id, { to: 'calendar@b.example', intent: 'calendar.find_slot', payload: { minutes: 30 }, timeoutMs: 60_000 });
 *   // the agent answering
 *   for await (const { message, a2a } of mr.a2a.requests(inbox.id)) await mr.a2a.respond(message.id, answer(a2a.payload));
 */

export interface A2aSendParams<P = unknown> {
  /** The agent(s) asked: one address or a list. */
  to: string | string[];
  /** What is asked, e.g. "calendar.find_slot" (1-128 of A-Z a-z 0-9 . _ : / -). */
  intent: string;
  /** Any JSON value, at most 256 KiB serialised. */
  payload: P;
  /** When the requester stops waiting; carried in the request so the responder knows. */
  reply_expected_by?: string | Date;
  /** Default: derived by the server from the idempotency key. */
  correlation_id?: string;
  /** Default: "[a2a] <intent>". */
  subject?: string;
  /** A note for human readers above the generated text part. */
  text?: string;
}

export interface A2aSendOptions extends RequestOptions {
  /** The same key never sends twice. Default: a fresh UUID per call, the same on every retry of it. */
  idempotencyKey?: string;
}

export interface A2aRequestParams<P = unknown> extends A2aSendParams<P> {
  /** How long to wait for the response in all, sending included (default 60 000 ms). */
  timeoutMs?: number;
  signal?: AbortSignal;
  idempotencyKey?: string;
}

/** What `send` and `respond` return: the queued message and the correlation id it carries. */
export interface A2aSent {
  correlation_id: string;
  message: OutboundMessage;
}

/** A received message known to be an authenticated a2a message, with its envelope. */
export interface A2aReceived<P = unknown> {
  message: Message;
  a2a: A2aInfo<P>;
}

export interface A2aRespondOptions extends RequestOptions {
  /** Default: the request's intent. */
  intent?: string;
  text?: string;
  /** Default: derived by the server from the request, so one request gets one response. */
  idempotencyKey?: string;
}

const iso = (d: string | Date | undefined) => (d instanceof Date ? d.toISOString() : d);

export class A2a {
  readonly #core: Core;
  readonly #inboxes: Inboxes;
  readonly #messages: Messages;
  readonly #events: Events;

  constructor(core: Core, deps: { inboxes: Inboxes; messages: Messages; events: Events }) {
    this.#core = core;
    this.#inboxes = deps.inboxes;
    this.#messages = deps.messages;
    this.#events = deps.events;
  }

  /** Sends a request and returns at once (202): pair with `waitForResponse`, or use `request`. */
  async send<P>(inboxId: string, params: A2aSendParams<P>, options?: A2aSendOptions): Promise<A2aSent> {
    const r = await this.#core.request<A2aSent>({
      method: 'POST', path: `/v1/inboxes/${seg(inboxId)}/a2a/requests`,
      body: { ...params, reply_expected_by: iso(params.reply_expected_by) },
      // One key per logical call, made before the first attempt: a retry is the same request.
      headers: { 'idempotency-key': options?.idempotencyKey ?? crypto.randomUUID() }, retry: 'idempotent', options,
    });
    return r.data;
  }

  /**
   * The authenticated response to a request sent with `send`, in the request's thread; throws
   * A2aTimeoutError when none arrived within `timeoutMs` (default 60 000 ms).
   */
  async waitForResponse<R = unknown>(sent: A2aSent, params: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<A2aReceived<R>> {
    const timeoutMs = params.timeoutMs ?? 60_000;
    const message = await this.#inboxes.waitForReply(sent.message.inbox_id, {
      thread_id: sent.message.thread_id, a2a: 'response', a2a_correlation_id: sent.correlation_id,
      // The server's time of the send: a response that came back faster than this call is found too.
      since: sent.message.received_at, timeoutMs, signal: params.signal,
    });
    if (!message?.a2a) throw new A2aTimeoutError(sent.correlation_id, sent.message.id, timeoutMs);
    return { message, a2a: message.a2a as A2aInfo<R> };
  }

  /**
   * Sends a request and resolves with the response's payload once the responder's authenticated
   * answer arrives; rejects with A2aTimeoutError after `timeoutMs` (sending included).
   */
  async request<R = unknown, P = unknown>(inboxId: string, params: A2aRequestParams<P>): Promise<R> {
    const { timeoutMs = 60_000, signal, idempotencyKey, ...body } = params;
    const deadline = Date.now() + timeoutMs;
    // The deadline travels with the request, except when the caller's key may repeat this call: the
    // same key must compose the same request (a later deadline would be refused as a different one).
    const replyBy = body.reply_expected_by ?? (idempotencyKey ? undefined : new Date(deadline));
    const sent = await this.send(inboxId, { ...body, reply_expected_by: replyBy }, { idempotencyKey, signal });
    const left = Math.max(0, deadline - Date.now());
    try {
      return (await this.waitForResponse<R>(sent, { timeoutMs: left, signal })).a2a.payload;
    } catch (err) {
      if (err instanceof A2aTimeoutError) throw new A2aTimeoutError(sent.correlation_id, sent.message.id, timeoutMs);
      throw err;
    }
  }

  /** Answers a received, authenticated request in its thread (422 a2a_unauthenticated otherwise). */
  async respond<P>(messageId: string, payload: P, options: A2aRespondOptions = {}): Promise<A2aSent> {
    const { intent, text, idempotencyKey, ...request } = options;
    const r = await this.#core.request<A2aSent>({
      method: 'POST', path: `/v1/messages/${seg(messageId)}/a2a/respond`, body: { payload, intent, text },
      // Without a key of ours the server derives one from the request, which makes retrying safe too.
      headers: idempotencyKey ? { 'idempotency-key': idempotencyKey } : {}, retry: 'idempotent', options: request,
    });
    return r.data;
  }

  /**
   * The authenticated a2a requests arriving in an inbox, as they come (the event stream, resumed
   * after `after` — a cursor of `mr.events` — or from now). Unauthenticated ones are skipped: their
   * messages stay readable in the inbox, with `a2a.authenticated` false and the reason.
   */
  async *requests<P = unknown>(inboxId: string, params: { after?: string; signal?: AbortSignal } = {}): AsyncGenerator<A2aReceived<P>, void, undefined> {
    for await (const e of this.#events.stream({ types: ['message.received'], inbox_id: inboxId, after: params.after, signal: params.signal })) {
      const hint = e.data?.a2a as { type?: string; authenticated?: boolean } | undefined;
      if (!e.message_id || hint?.type !== 'request' || hint.authenticated !== true) continue;
      // The message itself decides, not the event's summary of it.
      const message = await this.#messages.get(e.message_id, { signal: params.signal });
      if (message.a2a?.type !== 'request' || message.a2a.authenticated !== true) continue;
      yield { message, a2a: message.a2a as A2aInfo<P> };
    }
  }
}
