import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { PgBoss } from 'pg-boss';
import type { Domains } from '../../outbound/domains.ts';
import { principalWith, type Env } from '../auth.ts';
import { CreateDomain, Domain, errorResponses, json } from '../schemas.ts';

const DomainParams = z.object({ name: z.string().max(253) });

/** Sending domains, their DKIM keys and DNS records: an operator's business, so `admin` only. */
export function domainRoutes(app: OpenAPIHono<Env>, domains: Domains, boss: PgBoss): void {
  app.openapi(
    createRoute({
      method: 'post', path: '/v1/domains', operationId: 'createDomain', tags: ['domains'], summary: 'Add a sending domain: generates its DKIM key and returns the DNS records to publish',
      request: { body: { content: { 'application/json': { schema: CreateDomain } }, required: true } },
      responses: { 201: json(Domain, 'Created'), 200: json(Domain, 'The domain already existed'), ...errorResponses },
    }),
    async (c) => {
      principalWith(c, 'admin');
      const { domain, created } = await domains.create(c.req.valid('json').name);
      return c.json(domain, created ? 201 : 200);
    },
  );
  app.openapi(
    createRoute({ method: 'get', path: '/v1/domains', operationId: 'listDomains', tags: ['domains'], summary: 'List sending domains', responses: { 200: json(z.object({ data: z.array(Domain) }), 'The domains'), ...errorResponses } }),
    async (c) => {
      principalWith(c, 'admin');
      return c.json({ data: await domains.list() }, 200);
    },
  );
  app.openapi(
    createRoute({ method: 'get', path: '/v1/domains/{name}', operationId: 'getDomain', tags: ['domains'], summary: 'Get a domain with its DNS records', request: { params: DomainParams }, responses: { 200: json(Domain, 'The domain'), ...errorResponses } }),
    async (c) => {
      principalWith(c, 'admin');
      return c.json(await domains.get(c.req.valid('param').name), 200);
    },
  );
  app.openapi(
    createRoute({
      method: 'post', path: '/v1/domains/{name}/verify', operationId: 'verifyDomain', tags: ['domains'], summary: 'Look the DNS records up and record which are published',
      request: { params: DomainParams }, responses: { 200: json(Domain, 'The domain with its verification result'), ...errorResponses },
    }),
    async (c) => {
      principalWith(c, 'admin');
      return c.json(await domains.verify(c.req.valid('param').name), 200);
    },
  );
  app.openapi(
    createRoute({
      method: 'post', path: '/v1/domains/{name}/resume', operationId: 'resumeDomain', tags: ['domains'], summary: 'Resume sending from a domain paused by its bounce rate',
      request: { params: DomainParams }, responses: { 200: json(Domain, 'The domain, no longer paused'), ...errorResponses },
    }),
    async (c) => {
      principalWith(c, 'admin');
      return c.json(await domains.resume(c.req.valid('param').name, boss), 200);
    },
  );
}
