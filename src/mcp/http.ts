import type { OpenAPIHono } from '@hono/zod-openapi';
import { createMcpHandler } from '@modelcontextprotocol/server';
import { bodyLimit } from 'hono/body-limit';
import type { Env } from '../api/auth.ts';
import { MailroomError } from '../errors.ts';
import { inProcessApiFetch } from './api-fetch.ts';
import { createMcpServer } from './tools.ts';

/** MCP requests are small JSON-RPC messages; attachments above this go through the REST API. */
export const MCP_MAX_BODY = 1024 * 1024;

/**
 * MCP over Streamable HTTP at `/mcp` (stateless: a fresh server per request). The bearer token is
 * the REST one and is checked here, before the MCP handler runs, so a missing or invalid token is a
 * plain `401` with `WWW-Authenticate: Bearer` as MCP clients expect. The tools then call the REST
 * routes of this same app in-process with that token.
 */
export function mcpRoutes(app: OpenAPIHono<Env>): void {
  const handler = createMcpHandler(
    ({ authInfo }) => createMcpServer(inProcessApiFetch(app, `Bearer ${authInfo?.token ?? ''}`)),
    { maxRequestBodySize: MCP_MAX_BODY },
  );
  const limit = bodyLimit({ maxSize: MCP_MAX_BODY, onError: () => { throw new MailroomError('payload_too_large', `request body exceeds ${MCP_MAX_BODY} bytes`); } });

  app.all('/mcp', limit, async (c) => {
    const token = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header('authorization') ?? '')?.[1];
    if (!token) throw new MailroomError('unauthorized', 'missing bearer token: send "Authorization: Bearer mr_…" (the same token as the REST API)');
    // Authenticate through the API itself: /v1 checks the token before routing, so a path with no
    // route answers 401 for a bad token and 404 for a good one, at the cost of the token lookup only.
    const probe = await app.request('/v1/_mcp/authenticate', { headers: { authorization: `Bearer ${token}` } });
    if (probe.status === 401) return probe;
    await probe.body?.cancel();
    return handler.fetch(c.req.raw, { authInfo: { token, clientId: 'mailroom-token', scopes: [] } });
  });
}
