import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { Limits } from '../../outbound/limits.ts';
import { principalWith, type Env } from '../auth.ts';
import { CreateLimit, errorResponses, json, Limit } from '../schemas.ts';

/** Shared sending limits and their live usage. Admin only: they bind every inbox. */
export function limitRoutes(app: OpenAPIHono<Env>, limits: Limits): void {
  app.openapi(
    createRoute({ method: 'get', path: '/v1/limits', operationId: 'listLimits', tags: ['limits'], summary: 'Rate-limit policies with their usage and remaining budget per key', responses: { 200: json(z.object({ data: z.array(Limit) }), 'The policies'), ...errorResponses } }),
    async (c) => {
      principalWith(c, 'admin');
      return c.json({ data: await limits.list() }, 200);
    },
  );
  app.openapi(
    createRoute({
      method: 'post', path: '/v1/limits', operationId: 'createLimit', tags: ['limits'], summary: 'Add a rate-limit policy',
      request: { body: { content: { 'application/json': { schema: CreateLimit } }, required: true } },
      responses: { 201: json(Limit, 'Created'), ...errorResponses },
    }),
    async (c) => {
      principalWith(c, 'admin');
      return c.json(await limits.create(c.req.valid('json')), 201);
    },
  );
  app.openapi(
    createRoute({
      method: 'delete', path: '/v1/limits/{limit_id}', operationId: 'deleteLimit', tags: ['limits'], summary: 'Remove a rate-limit policy',
      request: { params: z.object({ limit_id: z.string().max(64) }) }, responses: { 204: { description: 'Removed' }, ...errorResponses },
    }),
    async (c) => {
      principalWith(c, 'admin');
      await limits.delete(c.req.valid('param').limit_id);
      return c.body(null, 204);
    },
  );
}
