import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { Webhooks } from '../../webhooks/webhooks.ts';
import { principalWith, type Env } from '../auth.ts';
import { errorResponses, json, page, PageQuery } from '../schemas.ts';

const Webhook = z.object({
  id: z.string(),
  url: z.string(),
  description: z.string().nullable(),
  event_types: z.array(z.string()).nullable().openapi({ description: 'Event types delivered; null: all.' }),
  inbox_ids: z.array(z.string()).nullable().openapi({ description: 'Only events of these inboxes; null: every event.' }),
  enabled: z.boolean(),
  disabled_reason: z.string().nullable(),
  created_at: z.string(),
  updated_at: z.string(),
}).openapi('Webhook');

const CreatedWebhook = Webhook.extend({
  secret: z.string().openapi({ description: 'The signing secret (whsec_…), shown only here: verify deliveries with it (Standard Webhooks).' }),
}).openapi('CreatedWebhook');

const Delivery = z.object({
  id: z.string().openapi({ description: 'The webhook-id header: the same on every retry and replay of this event.' }),
  event_id: z.string(),
  status: z.enum(['pending', 'succeeded', 'failed']),
  attempts: z.number().int(),
  last_status: z.number().int().nullable(),
  last_error: z.string().nullable(),
  next_attempt_at: z.string().nullable(),
  created_at: z.string(),
  delivered_at: z.string().nullable(),
}).openapi('WebhookDelivery');

const url = z.string().min(1).max(2048).openapi({ description: 'http(s) URL; private, loopback and link-local addresses are refused unless MAILROOM_WEBHOOK_ALLOW lists them.' });
const fields = {
  description: z.string().max(500).nullable().optional(),
  event_types: z.array(z.string().max(64)).max(50).nullable().optional(),
  inbox_ids: z.array(z.string().max(64)).max(1000).nullable().optional(),
};
const CreateWebhook = z.object({ url, ...fields }).strict().openapi('CreateWebhook');
const UpdateWebhook = z.object({ url: url.optional(), ...fields, enabled: z.boolean().optional() }).strict().openapi('UpdateWebhook');
const Params = z.object({ webhook_id: z.string().max(64) });

/** Webhook endpoints (scope webhooks:write): registration, rotation, deliveries, replay. */
export function webhookRoutes(app: OpenAPIHono<Env>, webhooks: Webhooks): void {
  app.openapi(
    createRoute({
      method: 'post', path: '/v1/webhooks', operationId: 'createWebhook', tags: ['webhooks'], summary: 'Register a webhook endpoint; events from now on are delivered to it, signed',
      request: { body: { content: { 'application/json': { schema: CreateWebhook } }, required: true } },
      responses: { 201: json(CreatedWebhook, 'The endpoint, with its secret'), ...errorResponses },
    }),
    async (c) => c.json(await webhooks.create(principalWith(c, 'webhooks:write'), c.req.valid('json')), 201),
  );
  app.openapi(
    createRoute({ method: 'get', path: '/v1/webhooks', operationId: 'listWebhooks', tags: ['webhooks'], summary: 'List webhook endpoints', responses: { 200: json(page(Webhook), 'The endpoints'), ...errorResponses } }),
    async (c) => c.json(await webhooks.list(principalWith(c, 'webhooks:write')), 200),
  );
  app.openapi(
    createRoute({ method: 'get', path: '/v1/webhooks/{webhook_id}', operationId: 'getWebhook', tags: ['webhooks'], summary: 'Get a webhook endpoint', request: { params: Params }, responses: { 200: json(Webhook, 'The endpoint'), ...errorResponses } }),
    async (c) => c.json(await webhooks.get(principalWith(c, 'webhooks:write'), c.req.valid('param').webhook_id), 200),
  );
  app.openapi(
    createRoute({
      method: 'patch', path: '/v1/webhooks/{webhook_id}', operationId: 'updateWebhook', tags: ['webhooks'], summary: 'Update a webhook endpoint (enabled: true re-enables a disabled one)',
      request: { params: Params, body: { content: { 'application/json': { schema: UpdateWebhook } }, required: true } },
      responses: { 200: json(Webhook, 'The endpoint'), ...errorResponses },
    }),
    async (c) => c.json(await webhooks.update(principalWith(c, 'webhooks:write'), c.req.valid('param').webhook_id, c.req.valid('json')), 200),
  );
  app.openapi(
    createRoute({ method: 'delete', path: '/v1/webhooks/{webhook_id}', operationId: 'deleteWebhook', tags: ['webhooks'], summary: 'Delete a webhook endpoint and its delivery history', request: { params: Params }, responses: { 204: { description: 'Deleted' }, ...errorResponses } }),
    async (c) => {
      await webhooks.delete(principalWith(c, 'webhooks:write'), c.req.valid('param').webhook_id);
      return c.body(null, 204);
    },
  );
  app.openapi(
    createRoute({
      method: 'post', path: '/v1/webhooks/{webhook_id}/rotate_secret', operationId: 'rotateWebhookSecret', tags: ['webhooks'],
      summary: 'New signing secret; the previous one keeps signing beside it for 24 h',
      request: { params: Params },
      responses: { 200: json(z.object({ secret: z.string(), previous_secret_expires_at: z.string() }), 'The new secret'), ...errorResponses },
    }),
    async (c) => c.json(await webhooks.rotateSecret(principalWith(c, 'webhooks:write'), c.req.valid('param').webhook_id), 200),
  );
  app.openapi(
    createRoute({
      method: 'get', path: '/v1/webhooks/{webhook_id}/deliveries', operationId: 'listWebhookDeliveries', tags: ['webhooks'], summary: 'Deliveries of an endpoint, newest first',
      request: { params: Params, query: PageQuery.extend({ status: z.enum(['pending', 'succeeded', 'failed']).optional() }) },
      responses: { 200: json(page(Delivery), 'A page of deliveries'), ...errorResponses },
    }),
    async (c) => c.json(await webhooks.deliveries(principalWith(c, 'webhooks:write'), c.req.valid('param').webhook_id, c.req.valid('query')), 200),
  );
  app.openapi(
    createRoute({
      method: 'post', path: '/v1/webhooks/{webhook_id}/replay', operationId: 'replayWebhook', tags: ['webhooks'],
      summary: 'Deliver again every watched event after a cursor (or from the oldest retained event)',
      request: { params: Params, query: z.object({ after: z.string().max(100).optional() }) },
      responses: { 200: json(z.object({ queued: z.number().int() }), 'How many deliveries were queued'), ...errorResponses },
    }),
    async (c) => c.json(await webhooks.replay(principalWith(c, 'webhooks:write'), c.req.valid('param').webhook_id, c.req.valid('query').after ?? null), 200),
  );
}
