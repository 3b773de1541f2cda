import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { Inboxes } from '../../inboxes/inboxes.ts';
import { principalWith, type Env } from '../auth.ts';
import { CreateInbox, errorResponses, Inbox, json, page, PageQuery, UpdateInbox } from '../schemas.ts';
import { MailroomError } from '../../errors.ts';

const InboxParams = z.object({ inbox_id: z.string().max(64) });
const IncludeQuery = z.object({
  include: z.enum(['counts']).optional().openapi({ description: 'counts: add `counts` (messages, inbound, outbound, held, threads) to each inbox.' }),
});

export function inboxRoutes(app: OpenAPIHono<Env>, inboxes: Inboxes): void {
  app.openapi(
    createRoute({
      method: 'post', path: '/v1/inboxes', operationId: 'createInbox', tags: ['inboxes'], summary: 'Create an inbox',
      request: { body: { content: { 'application/json': { schema: CreateInbox } }, required: false } },
      responses: { 201: json(Inbox, 'Created'), 200: json(Inbox, 'An inbox with this client_id already existed'), ...errorResponses },
    }),
    async (c) => {
      const p = principalWith(c, 'inboxes:write');
      // A token limited to some inboxes could never see a new one: creating is for unrestricted tokens.
      if (p.inboxIds) throw new MailroomError('insufficient_scope', 'a token restricted to specific inboxes cannot create inboxes');
      const body = c.req.valid('json') ?? {};
      const { inbox, created } = await inboxes.create(body);
      return c.json(inbox, created ? 201 : 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get', path: '/v1/inboxes', operationId: 'listInboxes', tags: ['inboxes'], summary: 'List inboxes',
      request: { query: PageQuery.extend(IncludeQuery.shape) },
      responses: { 200: json(page(Inbox), 'A page of inboxes, newest first'), ...errorResponses },
    }),
    async (c) => {
      const q = c.req.valid('query');
      const result = await inboxes.list(principalWith(c, 'inboxes:read'), q);
      if (q.include !== 'counts') return c.json(result, 200);
      const counts = await inboxes.counts(result.data.map((i) => i.id));
      return c.json({ ...result, data: result.data.map((i) => ({ ...i, counts: counts.get(i.id) })) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get', path: '/v1/inboxes/{inbox_id}', operationId: 'getInbox', tags: ['inboxes'], summary: 'Get an inbox',
      request: { params: InboxParams, query: IncludeQuery },
      responses: { 200: json(Inbox, 'The inbox'), ...errorResponses },
    }),
    async (c) => {
      const inbox = await inboxes.get(principalWith(c, 'inboxes:read'), c.req.valid('param').inbox_id);
      if (c.req.valid('query').include !== 'counts') return c.json(inbox, 200);
      return c.json({ ...inbox, counts: (await inboxes.counts([inbox.id])).get(inbox.id) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'patch', path: '/v1/inboxes/{inbox_id}', operationId: 'updateInbox', tags: ['inboxes'], summary: 'Update an inbox',
      request: { params: InboxParams, body: { content: { 'application/json': { schema: UpdateInbox } }, required: true } },
      responses: { 200: json(Inbox, 'The updated inbox'), ...errorResponses },
    }),
    async (c) => c.json(await inboxes.update(principalWith(c, 'inboxes:write'), c.req.valid('param').inbox_id, c.req.valid('json')), 200),
  );

  app.openapi(
    createRoute({
      method: 'delete', path: '/v1/inboxes/{inbox_id}', operationId: 'deleteInbox', tags: ['inboxes'], summary: 'Delete an inbox; mail to its address is refused from then on',
      request: { params: InboxParams },
      responses: { 204: { description: 'Deleted' }, ...errorResponses },
    }),
    async (c) => {
      await inboxes.delete(principalWith(c, 'inboxes:write'), c.req.valid('param').inbox_id);
      return c.body(null, 204);
    },
  );
}
