import { seg, type Core, type RequestOptions } from './core.ts';
import { PagePromise, type PageBody } from './pagination.ts';
import type { Draft, DraftListParams, DraftParams, SendParams } from './types.ts';
import { sendBody } from './messages.ts';

/**
 * Drafts: messages a person approves before they go. A token with `drafts:write` and without
 * `messages:send` can `create` and `edit` but not `approve` (the draft-only agent); approving
 * checks the suppression list and the thread again, then sends (at `send_at`).
 */
export class Drafts {
  readonly #core: Core;

  constructor(core: Core) {
    this.#core = core;
  }

  /**
   * Writes a draft in an inbox (checked as a send would be; 201). With `client_id` it is
   * idempotent — the same client_id returns the same draft — and only then retried after a lost
   * response. `reply_to_message_id` makes it an answer in that message's thread.
   */
  async create(inboxId: string, params: DraftParams, options?: RequestOptions): Promise<Draft> {
    return (await this.#core.request<Draft>({
      method: 'POST', path: `/v1/inboxes/${seg(inboxId)}/drafts`, body: sendBody(params), retry: params.client_id ? 'idempotent' : 'unsafe', options,
    })).data;
  }

  /** Drafts the token can see, newest first (`status: 'pending'` is the review queue). */
  list(params: DraftListParams = {}, options?: RequestOptions): PagePromise<Draft> {
    return new PagePromise(async (cursor) => (await this.#core.request<PageBody<Draft>>({
      method: 'GET', path: '/v1/drafts',
      query: { inbox_id: params.inbox_id, status: params.status, campaign_id: params.campaign_id, limit: params.limit, cursor: cursor ?? params.cursor }, options,
    })).data);
  }

  async get(draftId: string, options?: RequestOptions): Promise<Draft> {
    return (await this.#core.request<Draft>({ method: 'GET', path: `/v1/drafts/${seg(draftId)}`, options })).data;
  }

  /** Replaces the given fields of a pending draft (throws `draft_not_pending` once it was approved or rejected). */
  async edit(draftId: string, changes: Partial<SendParams> & { send_at?: string | null }, options?: RequestOptions): Promise<Draft> {
    return (await this.#core.request<Draft>({ method: 'POST', path: `/v1/drafts/${seg(draftId)}/edit`, body: sendBody(changes), retry: 'idempotent', options })).data;
  }

  /**
   * Approves and so sends (at `send_at`): throws `recipient_suppressed` (every recipient is
   * suppressed) or `draft_stale` (the thread received a newer message; pass `force` to send anyway).
   * A second approval throws `draft_not_pending`, so it is never sent twice.
   */
  async approve(draftId: string, params: { send_at?: string; note?: string; force?: boolean } = {}, options?: RequestOptions): Promise<Draft> {
    return (await this.#core.request<Draft>({ method: 'POST', path: `/v1/drafts/${seg(draftId)}/approve`, body: params, retry: 'unsafe', options })).data;
  }

  /** It will never be sent; a campaign run waiting for it ends (`draft_rejected`). */
  async reject(draftId: string, params: { note?: string } = {}, options?: RequestOptions): Promise<Draft> {
    return (await this.#core.request<Draft>({ method: 'POST', path: `/v1/drafts/${seg(draftId)}/reject`, body: params, retry: 'unsafe', options })).data;
  }
}
