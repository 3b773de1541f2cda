import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { Outbox } from '../../outbound/outbox.ts';
import { principalWith, type Env } from '../auth.ts';
import { json, OutboundMessage, sendErrorResponses, SendMessage } from '../schemas.ts';

const InboxParams = z.object({ inbox_id: z.string().max(64) });
const MessageParams = z.object({ message_id: z.string().max(64) });
const IdempotencyHeader = z.object({
  'idempotency-key': z.string().min(1).max(255).optional().openapi({ description: 'The same key with the same request returns the original message and sends nothing.' }),
});

const accepted = json(OutboundMessage, 'Stored and queued (or, for a repeated idempotency key, the original message: header Idempotent-Replayed: true)');

export function sendRoutes(app: OpenAPIHono<Env>, outbox: Outbox): void {
  app.openapi(
    createRoute({
      method: 'post', path: '/v1/inboxes/{inbox_id}/messages', operationId: 'sendMessage', tags: ['sending'], summary: 'Send a message from an inbox',
      request: { params: InboxParams, headers: IdempotencyHeader, body: { content: { 'application/json': { schema: SendMessage } }, required: true } },
      responses: { 202: accepted, ...sendErrorResponses },
    }),
    async (c) => {
      const { message, replayed } = await outbox.send(principalWith(c, 'messages:send'), c.req.valid('param').inbox_id, c.req.valid('json'), c.req.valid('header')['idempotency-key']);
      if (replayed) c.header('Idempotent-Replayed', 'true');
      return c.json(message as never, 202);
    },
  );

  for (const [path, all] of [['reply', false], ['reply_all', true]] as const) {
    app.openapi(
      createRoute({
        method: 'post', path: `/v1/messages/{message_id}/${path}`, operationId: all ? 'replyAllToMessage' : 'replyToMessage', tags: ['sending'],
        summary: all ? 'Reply to the sender and every other recipient of a message, in its thread' : 'Reply to the sender of a message, in its thread',
        request: { params: MessageParams, headers: IdempotencyHeader, body: { content: { 'application/json': { schema: SendMessage } }, required: true } },
        responses: { 202: accepted, ...sendErrorResponses },
      }),
      async (c) => {
        const { message, replayed } = await outbox.reply(principalWith(c, 'messages:send'), c.req.valid('param').message_id, c.req.valid('json'), all, c.req.valid('header')['idempotency-key']);
        if (replayed) c.header('Idempotent-Replayed', 'true');
        return c.json(message as never, 202);
      },
    );
  }
}
