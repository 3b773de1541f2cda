import { seg, type Core, type RequestOptions } from './core.ts';
import { PagePromise, type PageBody } from './pagination.ts';
import type { AgentView, MessageListParams, MessageSummary, OutboundMessage, SendParams } from './types.ts';
import { bytesToBase64 } from './verify.ts';

export interface SendOptions extends RequestOptions {
  /**
   * The same key never sends twice (per inbox, for the server's idempotency window). Default: a
   * fresh UUID per call, sent unchanged on every retry of that call — unless `dedupe` (or a body
   * `idempotency_key`) already makes the request idempotent.
   */
  idempotencyKey?: string;
}

export interface ReplyOptions extends SendOptions {
  /** Reply to every recipient (To and Cc), not only the sender. */
  all?: boolean;
}

export interface DownloadedAttachment {
  content: Uint8Array;
  contentType: string;
  filename: string | null;
  /** Hex SHA-256 of the content, from X-Content-SHA256. */
  sha256: string | null;
}

/** The body of a send (or a draft): attachment bytes as the base64 the REST API takes. */
export function sendBody(params: Partial<SendParams>): Record<string, unknown> {
  if (!params.attachments) return { ...params };
  return {
    ...params,
    attachments: params.attachments.map((a) => ({
      ...a,
      content: typeof a.content === 'string' ? a.content : bytesToBase64(a.content instanceof Uint8Array ? a.content : new Uint8Array(a.content)),
    })),
  };
}

function idempotencyHeaders(params: SendParams, options: SendOptions | undefined): Record<string, string> {
  if (options?.idempotencyKey) return { 'idempotency-key': options.idempotencyKey };
  // dedupe derives the key on the server, and a body key is a key: a header would override either.
  if (params.dedupe || (params as { idempotency_key?: unknown }).idempotency_key) return {};
  // One key per logical call, made before the first attempt: every retry carries the same one.
  return { 'idempotency-key': crypto.randomUUID() };
}

/** filename*=UTF-8''… (RFC 6266/8187) or filename="…". */
function dispositionFilename(cd: string | null): string | null {
  if (!cd) return null;
  const star = /filename\*\s*=\s*([^']*)'[^']*'([^;]+)/i.exec(cd);
  if (star) {
    try { return decodeURIComponent(star[2].trim()); } catch { /* fall through */ }
  }
  const plain = /filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))/i.exec(cd);
  if (plain) return plain[1] !== undefined ? plain[1].replace(/\\(.)/g, '$1') : plain[2];
  return null;
}

export class Messages {
  readonly #core: Core;

  constructor(core: Core) {
    this.#core = core;
  }

  /** Messages of an inbox, newest first (held ones left out unless `disposition` asks for them). */
  list(inboxId: string, params: MessageListParams = {}, options?: RequestOptions): PagePromise<MessageSummary> {
    const path = `/v1/inboxes/${seg(inboxId)}/messages`;
    const { cursor: first, ...filters } = params;
    return new PagePromise(async (cursor) =>
      (await this.#core.request<PageBody<MessageSummary>>({ method: 'GET', path, query: { ...filters, cursor: cursor ?? first }, options })).data);
  }

  /** The structured message; `delivery` is its sending state when Mailroom sent it. */
  async get(messageId: string, options?: RequestOptions): Promise<OutboundMessage> {
    return (await this.#core.request<OutboundMessage>({ method: 'GET', path: `/v1/messages/${seg(messageId)}`, options })).data;
  }

  /** The safe rendering for an LLM: Mailroom's verdicts first, the sender's content fenced and defanged. */
  async getAgentView(messageId: string, options?: RequestOptions): Promise<AgentView> {
    return (await this.#core.request<AgentView>({ method: 'GET', path: `/v1/messages/${seg(messageId)}`, query: { view: 'agent' }, options })).data;
  }

  /** The message exactly as received (message/rfc822), after Mailroom's Received: header. */
  async raw(messageId: string, options?: RequestOptions): Promise<Uint8Array> {
    return (await this.#core.request<Uint8Array>({ method: 'GET', path: `/v1/messages/${seg(messageId)}/raw`, responseType: 'bytes', options })).data;
  }

  async attachment(messageId: string, attachmentId: string, options?: RequestOptions): Promise<DownloadedAttachment> {
    const r = await this.#core.request<Uint8Array>({
      method: 'GET', path: `/v1/messages/${seg(messageId)}/attachments/${seg(attachmentId)}`, responseType: 'bytes', options,
    });
    return {
      content: r.data,
      contentType: r.headers.get('content-type') ?? 'application/octet-stream',
      filename: dispositionFilename(r.headers.get('content-disposition')),
      sha256: r.headers.get('x-content-sha256'),
    };
  }

  /**
   * Sends from an inbox (202: stored and queued). Idempotent: retried with the same Idempotency-Key,
   * so a lost response never sends twice.
   */
  async send(inboxId: string, params: SendParams, options?: SendOptions): Promise<OutboundMessage> {
    const r = await this.#core.request<OutboundMessage>({
      method: 'POST', path: `/v1/inboxes/${seg(inboxId)}/messages`, body: sendBody(params),
      headers: idempotencyHeaders(params, options), retry: 'idempotent', options,
    });
    return r.data;
  }

  /** Answers a message in its thread (to its Reply-To or From; `all` adds its To and Cc). */
  async reply(messageId: string, params: SendParams = {}, options?: ReplyOptions): Promise<OutboundMessage> {
    const r = await this.#core.request<OutboundMessage>({
      method: 'POST', path: `/v1/messages/${seg(messageId)}/${options?.all ? 'reply_all' : 'reply'}`, body: sendBody(params),
      headers: idempotencyHeaders(params, options), retry: 'idempotent', options,
    });
    return r.data;
  }

  /** Releases a quarantined or needs_human message into its inbox. */
  async release(messageId: string, options?: RequestOptions): Promise<OutboundMessage> {
    return (await this.#core.request<OutboundMessage>({ method: 'POST', path: `/v1/messages/${seg(messageId)}/release`, options })).data;
  }
}
