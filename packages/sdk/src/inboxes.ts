import { seg, sleep, type Core, type RequestOptions } from './core.ts';
import { PagePromise, type PageBody } from './pagination.ts';
import type { CreateInboxParams, Inbox, Message, PageParams, UpdateInboxParams, WaitForReplyParams } from './types.ts';

/** The server answers one wait request within at most this long (it caps it lower if configured so). */
const WAIT_SLICE_MS = 60_000;

export class Inboxes {
  readonly #core: Core;

  constructor(core: Core) {
    this.#core = core;
  }

  /**
   * Creates an inbox. With `client_id` it is idempotent (the same client_id returns the same inbox),
   * and only then is it retried after a lost response.
   */
  async create(params: CreateInboxParams = {}, options?: RequestOptions): Promise<Inbox> {
    const r = await this.#core.request<Inbox>({
      method: 'POST', path: '/v1/inboxes', body: params, options,
      retry: params.client_id ? 'idempotent' : 'unsafe',
    });
    return r.data;
  }

  /** Inboxes, newest first. Await it for one page, or `for await` it for all. */
  list(params: PageParams = {}, options?: RequestOptions): PagePromise<Inbox> {
    return new PagePromise(async (cursor) =>
      (await this.#core.request<PageBody<Inbox>>({ method: 'GET', path: '/v1/inboxes', query: { limit: params.limit, cursor: cursor ?? params.cursor }, options })).data);
  }

  async get(inboxId: string, options?: RequestOptions): Promise<Inbox> {
    return (await this.#core.request<Inbox>({ method: 'GET', path: `/v1/inboxes/${seg(inboxId)}`, options })).data;
  }

  async update(inboxId: string, patch: UpdateInboxParams, options?: RequestOptions): Promise<Inbox> {
    return (await this.#core.request<Inbox>({ method: 'PATCH', path: `/v1/inboxes/${seg(inboxId)}`, body: patch, options })).data;
  }

  /** Deletes the inbox; mail to its address is refused from then on. */
  async delete(inboxId: string, options?: RequestOptions): Promise<void> {
    await this.#core.request<void>({ method: 'DELETE', path: `/v1/inboxes/${seg(inboxId)}`, options });
  }

  /**
   * Waits for a message to arrive in the inbox (e.g. the reply in `thread_id`), up to `timeoutMs`
   * (default 60 s); returns it, or null when the time passes. Long-polls the server in slices of at
   * most 60 s. Without `since`, "arrived" means after the call started by the server's clock: later
   * slices ask from the server time of the first request's start (estimated from its Date header,
   * never later than it), so nothing arriving between slices is missed.
   */
  async waitForReply(inboxId: string, params: WaitForReplyParams = {}, options: RequestOptions = {}): Promise<Message | null> {
    const timeoutMs = params.timeoutMs ?? 60_000;
    const signal = params.signal ?? options.signal;
    const started = Date.now();
    const deadline = started + timeoutMs;
    let since = params.since instanceof Date ? params.since.toISOString() : params.since;
    for (;;) {
      const sliceMs = Math.max(0, Math.min(deadline - Date.now(), WAIT_SLICE_MS));
      const t0 = Date.now();
      const r = await this.#core.request<{ message: Message | null }>({
        method: 'GET', path: `/v1/inboxes/${seg(inboxId)}/messages/wait`,
        query: { thread_id: params.thread_id, from: params.from, a2a: params.a2a, a2a_correlation_id: params.a2a_correlation_id, since, timeout: String(Math.round(sliceMs) / 1000) },
        // The server holds the request open for the slice: the attempt timeout must outlast it.
        options: { ...options, signal, timeoutMs: sliceMs + Math.max(options.timeoutMs ?? this.#core.timeoutMs, 15_000) },
      });
      if (r.data.message) return r.data.message;
      if (since === undefined) {
        // The server's time when this call started: its Date (whole seconds, rounded down) minus the
        // time the request took, so never later than the truth. No Date header (a browser hides it
        // from cross-origin responses): the local clock.
        const date = Date.parse(r.headers.get('date') ?? '');
        since = new Date(Number.isNaN(date) ? started : date - (Date.now() - started)).toISOString();
      }
      const now = Date.now();
      if (now >= deadline) return null;
      // A server that answers a wait at once (its maximum set very low) is not asked in a tight loop.
      if (now - t0 < 250) await sleep(Math.min(250, deadline - now), signal);
    }
  }
}
