import { seg, type Core, type RequestOptions } from './core.ts';
import { PagePromise, type PageBody } from './pagination.ts';
import type {
  CreatedWebhook, CreateWebhookParams, RotatedSecret, UpdateWebhookParams, Webhook, WebhookDelivery, WebhookDeliveryListParams,
} from './types.ts';

/** Webhook endpoints (scope `webhooks:write`). Check deliveries with `verifyWebhook`. */
export class Webhooks {
  readonly #core: Core;

  constructor(core: Core) {
    this.#core = core;
  }

  /** Registers an endpoint. The response's `secret` ("whsec_…") is shown only here and by rotateSecret. */
  async create(params: CreateWebhookParams, options?: RequestOptions): Promise<CreatedWebhook> {
    return (await this.#core.request<CreatedWebhook>({ method: 'POST', path: '/v1/webhooks', body: params, options })).data;
  }

  list(options?: RequestOptions): PagePromise<Webhook> {
    return new PagePromise(async (cursor) =>
      (await this.#core.request<PageBody<Webhook>>({ method: 'GET', path: '/v1/webhooks', query: { cursor }, options })).data);
  }

  async get(webhookId: string, options?: RequestOptions): Promise<Webhook> {
    return (await this.#core.request<Webhook>({ method: 'GET', path: `/v1/webhooks/${seg(webhookId)}`, options })).data;
  }

  async update(webhookId: string, patch: UpdateWebhookParams, options?: RequestOptions): Promise<Webhook> {
    return (await this.#core.request<Webhook>({ method: 'PATCH', path: `/v1/webhooks/${seg(webhookId)}`, body: patch, options })).data;
  }

  async delete(webhookId: string, options?: RequestOptions): Promise<void> {
    await this.#core.request<void>({ method: 'DELETE', path: `/v1/webhooks/${seg(webhookId)}`, options });
  }

  /**
   * A new signing secret; deliveries carry signatures with both the new and the previous secret
   * until `previous_secret_expires_at`. Never retried after a response was lost (a second rotation
   * would retire the secret this one returned).
   */
  async rotateSecret(webhookId: string, options?: RequestOptions): Promise<RotatedSecret> {
    return (await this.#core.request<RotatedSecret>({ method: 'POST', path: `/v1/webhooks/${seg(webhookId)}/rotate_secret`, options })).data;
  }

  /** Deliveries of this endpoint (one per event, with its attempts), newest first. */
  deliveries(webhookId: string, params: WebhookDeliveryListParams = {}, options?: RequestOptions): PagePromise<WebhookDelivery> {
    const path = `/v1/webhooks/${seg(webhookId)}/deliveries`;
    return new PagePromise(async (cursor) => (await this.#core.request<PageBody<WebhookDelivery>>({
      method: 'GET', path, query: { status: params.status, limit: params.limit, cursor: cursor ?? params.cursor }, options,
    })).data);
  }

  /**
   * Delivers again every watched event after `after` (a cursor or event id), or from the oldest
   * retained event without it. Not retried after a lost response (it would queue them twice).
   */
  async replay(webhookId: string, params: { after?: string } = {}, options?: RequestOptions): Promise<{ queued: number }> {
    return (await this.#core.request<{ queued: number }>({
      method: 'POST', path: `/v1/webhooks/${seg(webhookId)}/replay`, query: { after: params.after }, options,
    })).data;
  }
}
