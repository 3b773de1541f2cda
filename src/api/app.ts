import { OpenAPIHono } from '@hono/zod-openapi';
import { bodyLimit } from 'hono/body-limit';
import type { Kysely } from 'kysely';
import type { PgBoss } from 'pg-boss';
import { MailroomError } from '../errors.ts';
import type { Inboxes } from '../inboxes/inboxes.ts';
import type { Logger } from '../log.ts';
import type { Messages } from '../messages/messages.ts';
import type { Database } from '../store/schema.ts';
import type { TokenCache } from '../auth/tokens.ts';
import { requireToken, type Env } from './auth.ts';
import { problemResponse } from './problem.ts';
import { mcpRoutes } from '../mcp/http.ts';
import { inboxRoutes } from './routes/inboxes.ts';
import { messageRoutes } from './routes/messages.ts';
import { tokenRoutes } from './routes/tokens.ts';
import { domainRoutes } from './routes/domains.ts';
import { sendRoutes } from './routes/send.ts';
import { suppressionRoutes } from './routes/suppressions.ts';
import type { Outbox } from '../outbound/outbox.ts';
import type { Domains } from '../outbound/domains.ts';
import type { Limits } from '../outbound/limits.ts';
import { limitRoutes } from './routes/limits.ts';
import { statsRoutes } from './routes/stats.ts';
import { unsubscribeRoutes } from './routes/unsubscribe.ts';
import type { Unsubscribe } from '../outbound/unsubscribe.ts';
import type { EventFeed } from '../events/feed.ts';
import type { EventTail } from '../events/tail.ts';
import { eventRoutes } from './routes/events.ts';
import { waitRoutes } from './routes/wait.ts';
import { webhookRoutes } from './routes/webhooks.ts';
import type { Webhooks } from '../webhooks/webhooks.ts';
import type { Campaigns } from '../orchestrator/campaigns.ts';
import { campaignRoutes } from './routes/campaigns.ts';
import { A2a } from '../a2a/a2a.ts';
import { a2aRoutes } from './routes/a2a.ts';
import type { Drafts } from '../drafts/drafts.ts';
import { draftRoutes } from './routes/drafts.ts';
import { consoleRoutes } from '../console/routes.ts';

export interface ApiDeps {
  db: Kysely<Database>;
  /** Tokens by hash (auth/tokens.ts TokenCache): exact embedded, kept exact across processes on PostgreSQL by change notices. */
  tokenCache: TokenCache | null;
  inboxes: Inboxes;
  messages: Messages;
  outbox: Outbox;
  domains: Domains;
  limits: Limits;
  boss: PgBoss;
  unsubscribe: Unsubscribe;
  feed: EventFeed;
  tail: EventTail;
  webhooks: Webhooks;
  campaigns: Campaigns;
  drafts: Drafts;
  waitMaxSeconds: number;
  /** Largest composed message the send API accepts; its JSON body (base64) may be a third larger. */
  maxSendSize: number;
  log: Logger;
  health: () => Promise<{ ok: boolean; engine: string }>;
}

/** The REST API. Domain errors become problem documents here, and only here. */
export function createApi(deps: ApiDeps): OpenAPIHono<Env> {
  const app = new OpenAPIHono<Env>({
    // zod validation failures: one problem document listing every field that failed.
    defaultHook: (result) => {
      if (!result.success) {
        const errors = result.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
        throw new MailroomError('invalid_request', errors.map((e) => (e.path ? `${e.path}: ${e.message}` : e.message)).join('; '), { details: errors });
      }
    },
  });

  app.onError((err, c) => {
    if (err instanceof MailroomError) {
      const res = problemResponse(c, err);
      // Refused before the body was read: the rest of it is still on the wire, so the connection
      // cannot carry another request. Say so, or a keep-alive client sends its next request into it.
      if (err.code === 'payload_too_large' || err.code === 'message_too_large') res.headers.set('connection', 'close');
      return res;
    }
    // Malformed JSON bodies surface from the validator as an HTTPException with status 400.
    const status = (err as { status?: number }).status;
    if (status === 400) return problemResponse(c, new MailroomError('invalid_request', `malformed request body: ${err.message}`));
    if (status === 413) return problemResponse(c, new MailroomError('payload_too_large', 'request body too large'));
    deps.log.error({ err, path: c.req.path }, 'unhandled API error');
    return problemResponse(c, new MailroomError('internal', 'internal error'));
  });
  app.notFound((c) => problemResponse(c, new MailroomError('not_found', `no route for ${c.req.method} ${c.req.path}`)));

  app.get('/healthz', async (c) => {
    const h = await deps.health().catch(() => ({ ok: false, engine: 'unknown' }));
    return c.json({ status: h.ok ? 'ok' : 'unavailable', engine: h.engine }, h.ok ? 200 : 503);
  });

  // The API description, public (no token): generated from the same zod schemas that validate
  // requests, so it cannot drift from what the server accepts. /openapi.json is the older address.
  const openapi = (c: { req: { url: string } }) => ({
    openapi: '3.1.0',
    info: {
      title: 'Mailroom API', version: '0.1.0',
      description: 'Email for AI agents: inboxes, messages, threads, sending, domains, suppressions, limits, tokens, events, webhooks, campaigns and drafts.',
      license: { name: 'MIT', identifier: 'MIT' },
    },
    servers: [{ url: new URL(c.req.url).origin, description: 'this server' }],
    security: [{ bearer: [] }],
  });
  app.doc31('/v1/openapi.json', openapi);
  app.doc31('/openapi.json', openapi);

  // Outside /v1: a recipient following a List-Unsubscribe link has no token, and needs none.
  unsubscribeRoutes(app, deps.unsubscribe);
  // The operator console's files at / and /console/*, and its sign-in link exchange.
  consoleRoutes(app, deps.db);

  // Send requests carry attachments in base64; everything else is small.
  const sendBody = Math.ceil(deps.maxSendSize * 1.4) + 64 * 1024;
  const smallLimit = bodyLimit({ maxSize: 1024 * 1024, onError: () => { throw new MailroomError('payload_too_large', 'request body exceeds 1 MiB'); } });
  const sendLimit = bodyLimit({ maxSize: sendBody, onError: () => { throw new MailroomError('message_too_large', `request body exceeds ${sendBody} bytes (MAILROOM_MAX_SEND_SIZE)`); } });
  const isSend = (path: string) => /^\/v1\/(inboxes\/[^/]+\/messages|messages\/[^/]+\/reply(_all)?)$/.test(path);
  // Campaign definitions and lead lists (CSV) can be large: 100,000 leads fit in 64 MiB.
  const isBulk = (path: string) => /^\/v1\/campaigns(\/[^/]+\/leads)?$/.test(path);
  const bulkLimit = bodyLimit({ maxSize: 64 * 1024 * 1024, onError: () => { throw new MailroomError('payload_too_large', 'request body exceeds 64 MiB'); } });
  app.use('/v1/*', (c, next) => (c.req.method === 'POST' && isSend(c.req.path) ? sendLimit : c.req.method === 'POST' && isBulk(c.req.path) ? bulkLimit : smallLimit)(c, next));
  app.use('/v1/*', requireToken(deps.db, deps.tokenCache));
  inboxRoutes(app, deps.inboxes);
  messageRoutes(app, deps.messages, deps.outbox);
  sendRoutes(app, deps.outbox);
  a2aRoutes(app, new A2a({ outbox: deps.outbox, messages: deps.messages }));
  domainRoutes(app, deps.domains, deps.boss);
  suppressionRoutes(app, deps.db);
  limitRoutes(app, deps.limits);
  statsRoutes(app, deps.db);
  tokenRoutes(app, deps.db, deps.tokenCache);
  eventRoutes(app, deps.feed, deps.tail);
  webhookRoutes(app, deps.webhooks);
  campaignRoutes(app, deps.campaigns);
  draftRoutes(app, deps.drafts);
  waitRoutes(app, { inboxes: deps.inboxes, messages: deps.messages, tail: deps.tail, maxSeconds: deps.waitMaxSeconds });

  mcpRoutes(app);
  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', { type: 'http', scheme: 'bearer', description: 'A Mailroom token (mr_…): the admin token or a scoped one from POST /v1/tokens.' });
  return app;
}
