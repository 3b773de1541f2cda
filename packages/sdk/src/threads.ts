import { seg, type Core, type RequestOptions } from './core.ts';
import { PagePromise, type PageBody } from './pagination.ts';
import type { PageParams, Thread, ThreadWithMessages } from './types.ts';

export class Threads {
  readonly #core: Core;

  constructor(core: Core) {
    this.#core = core;
  }

  /** Threads of an inbox, newest first. */
  list(inboxId: string, params: PageParams = {}, options?: RequestOptions): PagePromise<Thread> {
    const path = `/v1/inboxes/${seg(inboxId)}/threads`;
    return new PagePromise(async (cursor) =>
      (await this.#core.request<PageBody<Thread>>({ method: 'GET', path, query: { limit: params.limit, cursor: cursor ?? params.cursor }, options })).data);
  }

  /** One thread with its messages, oldest first. */
  async get(threadId: string, options?: RequestOptions): Promise<ThreadWithMessages> {
    return (await this.#core.request<ThreadWithMessages>({ method: 'GET', path: `/v1/threads/${seg(threadId)}`, options })).data;
  }
}
