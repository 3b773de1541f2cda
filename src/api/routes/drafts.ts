import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { Drafts } from '../../drafts/drafts.ts';
import type { Env } from '../auth.ts';
import { errorResponses, json, Metadata, page, PageQuery, Problem, SendMessage } from '../schemas.ts';

const DRAFT_STATUSES = ['pending', 'approved', 'sent', 'failed', 'rejected', 'cancelled'] as const;

const DraftContent = SendMessage.omit({ idempotency_key: true, dedupe: true });

const CreateDraft = DraftContent.extend({
  reply_to_message_id: z.string().max(64).optional().openapi({ description: 'A message of this inbox the draft answers (in its thread, "Re:" subject, to its sender unless `to` is given).' }),
  reply_all: z.boolean().optional(),
  send_at: z.iso.datetime({ offset: true }).optional().openapi({ description: 'Once approved, send at this time (default: at once).' }),
  client_id: z.string().min(1).max(255).optional().openapi({ description: 'Idempotent creation: the same client_id in this inbox returns the same draft.' }),
}).strict().openapi('CreateDraft');

const EditDraft = DraftContent.partial().extend({
  send_at: z.iso.datetime({ offset: true }).nullable().optional(),
}).strict().openapi('EditDraft');

const Draft = z.object({
  id: z.string(), inbox_id: z.string(), status: z.enum(DRAFT_STATUSES),
  reply_to_message_id: z.string().nullable(), reply_all: z.boolean(),
  content: z.object({
    to: z.array(z.string()).optional(), cc: z.array(z.string()).optional(), bcc: z.array(z.string()).optional(),
    subject: z.string().optional(), text: z.string().optional(), html: z.string().optional(),
    attachments: z.array(z.object({ filename: z.string(), content_type: z.string().optional(), content: z.string() })).optional(),
    headers: z.record(z.string(), z.string()).optional(), labels: z.array(z.string()).optional(), metadata: Metadata.optional(),
    trace_id: z.string().optional(), marketing: z.boolean().optional(),
  }),
  send_at: z.string().nullable(), client_id: z.string().nullable(),
  campaign_id: z.string().nullable(), run_id: z.string().nullable(), step: z.number().nullable().openapi({ description: 'The campaign step (1-based) this draft is.' }),
  message_id: z.string().nullable().openapi({ description: 'The outbound message, once sent.' }),
  reviewed_by: z.string().nullable(), review_note: z.string().nullable(),
  error: z.object({ code: z.string(), message: z.string() }).nullable().openapi({ description: 'Why it failed, was cancelled, or went back to pending.' }),
  created_at: z.string(), updated_at: z.string(), approved_at: z.string().nullable(), sent_at: z.string().nullable(),
}).openapi('Draft');

const Params = z.object({ draft_id: z.string().max(64) });
const conflict = { 409: { description: 'The draft is no longer pending, or its thread received a newer message (draft_stale)', content: { 'application/problem+json': { schema: Problem } } } } as const;

/** Drafts: written by agents (a `drafts:write` token cannot send), approved by someone who can. */
export function draftRoutes(app: OpenAPIHono<Env>, drafts: Drafts): void {
  app.openapi(
    createRoute({
      method: 'post', path: '/v1/inboxes/{inbox_id}/drafts', operationId: 'createDraft', tags: ['drafts'], summary: 'Write a draft (checked as a send would be, sent only once approved)',
      request: { params: z.object({ inbox_id: z.string().max(64) }), body: { content: { 'application/json': { schema: CreateDraft } }, required: true } },
      responses: { 201: json(Draft, 'Created'), 200: json(Draft, 'The draft this client_id already created'), ...errorResponses },
    }),
    async (c) => {
      const { draft, created } = await drafts.create(c.get('principal'), c.req.valid('param').inbox_id, c.req.valid('json'));
      return c.json(draft as never, created ? 201 : 200);
    },
  );
  app.openapi(
    createRoute({
      method: 'get', path: '/v1/drafts', operationId: 'listDrafts', tags: ['drafts'], summary: 'List drafts, newest first',
      request: { query: PageQuery.extend({ inbox_id: z.string().max(64).optional(), status: z.enum(DRAFT_STATUSES).optional(), campaign_id: z.string().max(64).optional() }) },
      responses: { 200: json(page(Draft), 'A page of drafts'), ...errorResponses },
    }),
    async (c) => c.json((await drafts.list(c.get('principal'), c.req.valid('query'))) as never, 200),
  );
  app.openapi(
    createRoute({
      method: 'get', path: '/v1/drafts/{draft_id}', operationId: 'getDraft', tags: ['drafts'], summary: 'Get a draft',
      request: { params: Params },
      responses: { 200: json(Draft, 'The draft'), ...errorResponses },
    }),
    async (c) => c.json((await drafts.get(c.get('principal'), c.req.valid('param').draft_id)) as never, 200),
  );
  app.openapi(
    createRoute({
      method: 'post', path: '/v1/drafts/{draft_id}/edit', operationId: 'editDraft', tags: ['drafts'], summary: 'Change a pending draft (the fields given replace the stored ones)',
      request: { params: Params, body: { content: { 'application/json': { schema: EditDraft } }, required: true } },
      responses: { 200: json(Draft, 'The edited draft'), ...errorResponses, ...conflict },
    }),
    async (c) => c.json((await drafts.edit(c.get('principal'), c.req.valid('param').draft_id, c.req.valid('json'))) as never, 200),
  );
  app.openapi(
    createRoute({
      method: 'post', path: '/v1/drafts/{draft_id}/approve', operationId: 'approveDraft', tags: ['drafts'],
      summary: 'Approve a draft: it is sent (at send_at), after the suppression list and its thread are checked again',
      request: {
        params: Params,
        body: {
          content: { 'application/json': { schema: z.object({
            send_at: z.iso.datetime({ offset: true }).optional(),
            note: z.string().max(2000).optional(),
            force: z.boolean().optional().openapi({ description: 'Send even though the thread received a newer message.' }),
          }).strict() } },
          required: false,
        },
      },
      responses: { 200: json(Draft, 'Approved (status approved; sent, and then status sent, shortly)'), ...errorResponses, ...conflict, 422: { description: 'Every recipient is suppressed', content: { 'application/problem+json': { schema: Problem } } } },
    }),
    async (c) => c.json((await drafts.approve(c.get('principal'), c.req.valid('param').draft_id, await optionalJson(c))) as never, 200),
  );
  app.openapi(
    createRoute({
      method: 'post', path: '/v1/drafts/{draft_id}/reject', operationId: 'rejectDraft', tags: ['drafts'], summary: 'Reject a draft: it is never sent',
      request: { params: Params, body: { content: { 'application/json': { schema: z.object({ note: z.string().max(2000).optional() }).strict() } }, required: false } },
      responses: { 200: json(Draft, 'Rejected'), ...errorResponses, ...conflict },
    }),
    async (c) => c.json((await drafts.reject(c.get('principal'), c.req.valid('param').draft_id, await optionalJson(c))) as never, 200),
  );
}

/** A body that may be absent (approve and reject need none): the validated one, or {}. */
async function optionalJson(c: { req: { valid(t: 'json'): any; header(n: string): string | undefined } }) {
  return c.req.header('content-type')?.includes('application/json') ? (c.req.valid('json') ?? {}) : {};
}
