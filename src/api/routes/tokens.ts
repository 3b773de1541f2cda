import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { Kysely } from 'kysely';
import { createToken, listTokens, revokeToken, tokenById, type TokenCache } from '../../auth/tokens.ts';
import { createSigninLink } from '../../auth/signin-links.ts';
import type { Database } from '../../store/schema.ts';
import { principalWith, type Env } from '../auth.ts';
import { CreatedToken, CreateToken, errorResponses, json, Token } from '../schemas.ts';

export function tokenRoutes(app: OpenAPIHono<Env>, db: Kysely<Database>, cache: TokenCache | null): void {
  app.openapi(
    createRoute({
      method: 'post', path: '/v1/tokens', operationId: 'createToken', tags: ['tokens'], summary: 'Create a scoped token (admin)',
      request: { body: { content: { 'application/json': { schema: CreateToken } }, required: true } },
      responses: { 201: json(CreatedToken, 'Created; the secret is in `token` and is never shown again'), ...errorResponses },
    }),
    async (c) => {
      principalWith(c, 'admin');
      const { token, view } = await createToken(db, c.req.valid('json'));
      return c.json({ ...view, token }, 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get', path: '/v1/tokens', operationId: 'listTokens', tags: ['tokens'], summary: 'List tokens (admin); secrets are never returned',
      responses: { 200: json(z.object({ data: z.array(Token), next_cursor: z.string().nullable() }), 'All tokens'), ...errorResponses },
    }),
    async (c) => {
      principalWith(c, 'admin');
      return c.json({ data: await listTokens(db), next_cursor: null }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get', path: '/v1/tokens/self', operationId: 'getOwnToken', tags: ['tokens'],
      summary: 'The token making the request: its scopes and inboxes (any token), so a client offers only what it may do',
      responses: { 200: json(Token, 'This token'), ...errorResponses },
    }),
    async (c) => c.json(await tokenById(db, c.get('principal').tokenId), 200),
  );

  app.openapi(
    createRoute({
      method: 'post', path: '/v1/signin_links', operationId: 'createSigninLink', tags: ['tokens'],
      summary: 'A one-time sign-in link for the operator console (admin); it works once, for 24 hours',
      responses: { 201: json(z.object({ url: z.string(), expires_at: z.string() }), 'The link; opening it signs a browser in with a new admin token'), ...errorResponses },
    }),
    async (c) => {
      principalWith(c, 'admin');
      return c.json(await createSigninLink(db, new URL(c.req.url).origin), 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete', path: '/v1/tokens/{token_id}', operationId: 'revokeToken', tags: ['tokens'], summary: 'Revoke a token (admin)',
      request: { params: z.object({ token_id: z.string().max(64) }) },
      responses: { 200: json(Token, 'The revoked token'), ...errorResponses },
    }),
    async (c) => {
      principalWith(c, 'admin');
      return c.json(await revokeToken(db, c.req.valid('param').token_id, cache), 200);
    },
  );
}
