import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { A2a } from '../../a2a/a2a.ts';
import { CORRELATION_ID_RE, INTENT_RE } from '../../a2a/format.ts';
import { principalWith, type Env } from '../auth.ts';
import { json, OutboundMessage, Problem, sendErrorResponses } from '../schemas.ts';

/**
 * Agent-to-agent email (docs/a2a.md): a request from an inbox, and the response to a received
 * request, both through the outbox (scope messages:send). The requester then waits with
 * `GET /v1/inboxes/{id}/messages/wait?a2a_correlation_id=…`.
 */

const InboxParams = z.object({ inbox_id: z.string().max(64) });
const MessageParams = z.object({ message_id: z.string().max(64) });
const IdempotencyHeader = z.object({
  'idempotency-key': z.string().min(1).max(255).optional().openapi({ description: 'The same key with the same request returns the original message and sends nothing.' }),
});

const AddressList = z.union([z.string(), z.array(z.string()).max(100)]).transform((v) => (Array.isArray(v) ? v : [v]));
const Intent = z.string().regex(INTENT_RE).openapi({ description: 'What is asked, e.g. "calendar.find_slot": 1-128 characters of A-Z a-z 0-9 . _ : / -.' });
// A payload that is absent is refused here; its size and content are checked by the format (a2a/format.ts).
const Payload = z.unknown().refine((v) => v !== undefined, 'payload is required').openapi({ description: 'Any JSON value, at most 256 KiB serialised.' });

const A2aRequest = z
  .object({
    to: AddressList.openapi({ description: 'The agent(s) asked: one address or a list.' }),
    intent: Intent,
    payload: Payload,
    reply_expected_by: z.iso.datetime({ offset: true }).optional().openapi({ description: 'When the requester stops waiting (ISO 8601); carried in the request.' }),
    correlation_id: z.string().regex(CORRELATION_ID_RE).optional()
      .openapi({ description: 'Default: derived from the idempotency key when there is one (a retry is the same request), else random.' }),
    subject: z.string().max(998).optional().openapi({ description: 'Default: "[a2a] <intent>".' }),
    text: z.string().max(10_000).optional().openapi({ description: 'A note for human readers, above the generated text part.' }),
    idempotency_key: z.string().min(1).max(255).optional().openapi({ description: 'Same as the Idempotency-Key header.' }),
    trace_id: z.string().min(1).max(200).optional(),
    metadata: z.record(z.string(), z.unknown()).optional(),
  })
  .strict()
  .openapi('A2aRequest');

const A2aRespond = z
  .object({
    payload: Payload,
    intent: Intent.optional().openapi({ description: "Default: the request's intent." }),
    text: z.string().max(10_000).optional().openapi({ description: 'A note for human readers, above the generated text part.' }),
    idempotency_key: z.string().min(1).max(255).optional()
      .openapi({ description: 'Default: derived from the request, so a request gets one response however often this is retried.' }),
    trace_id: z.string().min(1).max(200).optional(),
  })
  .strict()
  .openapi('A2aRespond');

const A2aSent = z
  .object({
    correlation_id: z.string().openapi({ description: 'Wait for the response with GET /v1/inboxes/{inbox_id}/messages/wait?a2a_correlation_id=…' }),
    message: OutboundMessage,
  })
  .openapi('A2aSent');

const accepted = json(A2aSent, 'Stored and queued (or, for a repeated idempotency key, the original message: header Idempotent-Replayed: true)');
const problem = (description: string) => ({ description, content: { 'application/problem+json': { schema: Problem } } });

export function a2aRoutes(app: OpenAPIHono<Env>, a2a: A2a): void {
  app.openapi(
    createRoute({
      method: 'post', path: '/v1/inboxes/{inbox_id}/a2a/requests', operationId: 'sendAgentRequest', tags: ['a2a'],
      summary: 'Send an agent-to-agent request (text part + application/json part) from an inbox',
      request: { params: InboxParams, headers: IdempotencyHeader, body: { content: { 'application/json': { schema: A2aRequest } }, required: true } },
      responses: { 202: accepted, ...sendErrorResponses, 413: problem('The payload is over 256 KiB (a2a_payload_too_large)') },
    }),
    async (c) => {
      const r = await a2a.request(principalWith(c, 'messages:send'), c.req.valid('param').inbox_id, c.req.valid('json'), c.req.valid('header')['idempotency-key']);
      if (r.replayed) c.header('Idempotent-Replayed', 'true');
      return c.json({ correlation_id: r.correlation_id, message: r.message } as never, 202);
    },
  );

  app.openapi(
    createRoute({
      method: 'post', path: '/v1/messages/{message_id}/a2a/respond', operationId: 'respondToAgentRequest', tags: ['a2a'],
      summary: 'Answer a received, authenticated a2a request in its thread, with its correlation id',
      request: { params: MessageParams, headers: IdempotencyHeader, body: { content: { 'application/json': { schema: A2aRespond } }, required: true } },
      responses: {
        202: accepted, ...sendErrorResponses,
        413: problem('The payload is over 256 KiB (a2a_payload_too_large)'),
        422: problem('The message is not a received a2a request (a2a_not_a_request), its request is not authenticated (a2a_unauthenticated), or every recipient is suppressed'),
      },
    }),
    async (c) => {
      const r = await a2a.respond(principalWith(c, 'messages:send'), c.req.valid('param').message_id, c.req.valid('json'), c.req.valid('header')['idempotency-key']);
      if (r.replayed) c.header('Idempotent-Replayed', 'true');
      return c.json({ correlation_id: r.correlation_id, message: r.message } as never, 202);
    },
  );
}
