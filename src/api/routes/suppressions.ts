import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { Kysely } from 'kysely';
import { MailroomError, notFound } from '../../errors.ts';
import { isValidAddress } from '../../outbound/addresses.ts';
import { addSuppression, deleteSuppression, listSuppressions } from '../../outbound/suppressions.ts';
import type { Database } from '../../store/schema.ts';
import { principalWith, type Env } from '../auth.ts';
import { CreateSuppression, errorResponses, json, page, PageQuery, Suppression } from '../schemas.ts';

/** The suppression list. Admin only for now: a global entry affects every inbox. */
export function suppressionRoutes(app: OpenAPIHono<Env>, db: Kysely<Database>): void {
  app.openapi(
    createRoute({
      method: 'get', path: '/v1/suppressions', operationId: 'listSuppressions', tags: ['suppressions'], summary: 'List suppressed addresses, newest first',
      request: { query: PageQuery.extend({ address: z.string().max(254).optional() }) },
      responses: { 200: json(page(Suppression), 'A page of suppressions'), ...errorResponses },
    }),
    async (c) => {
      principalWith(c, 'admin');
      return c.json(await listSuppressions(db, c.req.valid('query')), 200);
    },
  );
  app.openapi(
    createRoute({
      method: 'post', path: '/v1/suppressions', operationId: 'createSuppression', tags: ['suppressions'], summary: 'Suppress an address; queued mail to it is cancelled',
      request: { body: { content: { 'application/json': { schema: CreateSuppression } }, required: true } },
      responses: { 201: json(Suppression, 'Suppressed'), ...errorResponses },
    }),
    async (c) => {
      principalWith(c, 'admin');
      const body = c.req.valid('json');
      if (!isValidAddress(body.address)) throw new MailroomError('invalid_address', `"${body.address.slice(0, 100)}" is not a valid email address`);
      if (body.scope !== 'global' && !body.scope_value) throw new MailroomError('invalid_request', `scope_value is required for scope ${body.scope}`);
      const s = await db.transaction().execute((trx) => addSuppression(trx, { address: body.address, scope: body.scope, scopeValue: body.scope_value, reason: body.reason, detail: body.detail }));
      return c.json(s, 201);
    },
  );
  app.openapi(
    createRoute({
      method: 'delete', path: '/v1/suppressions/{suppression_id}', operationId: 'deleteSuppression', tags: ['suppressions'], summary: 'Remove a suppression',
      request: { params: z.object({ suppression_id: z.string().max(64) }) },
      responses: { 204: { description: 'Removed' }, ...errorResponses },
    }),
    async (c) => {
      principalWith(c, 'admin');
      if (!(await deleteSuppression(db, c.req.valid('param').suppression_id))) throw notFound('suppression');
      return c.body(null, 204);
    },
  );
}
