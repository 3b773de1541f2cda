import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { streamSSE } from 'hono/streaming';
import { canSeeInbox } from '../../auth/scopes.ts';
import { MailroomError, notFound } from '../../errors.ts';
import type { EventFeed, FeedQuery } from '../../events/feed.ts';
import type { EventTail } from '../../events/tail.ts';
import { principalWith, type Env } from '../auth.ts';
import { errorResponses, EventQuery, EventSchema, json, page } from '../schemas.ts';

/** Keep-alive comment on an idle stream: proxies drop connections that stay silent for a minute. */
const KEEPALIVE_MS = 15_000;
const STREAM_PAGE = 500;

const typesOf = (types: string | undefined) => types?.split(',').map((t) => t.trim()).filter(Boolean) ?? null;

/**
 * The event log over HTTP: pages (GET /v1/events) and a Server-Sent Events stream that resumes with
 * Last-Event-ID. Both read through the same feed, so a client that switches between them, or
 * reconnects, continues from the cursor it holds without gaps or repeats.
 */
export function eventRoutes(app: OpenAPIHono<Env>, feed: EventFeed, tail: EventTail): void {
  app.openapi(
    createRoute({
      method: 'get', path: '/v1/events', operationId: 'listEvents', tags: ['events'], summary: 'Page through the event log in order (replayable from any cursor)',
      request: { query: EventQuery },
      responses: { 200: json(page(EventSchema), 'Events after the cursor, oldest first; next_cursor resumes after the last one'), ...errorResponses },
    }),
    async (c) => {
      const p = principalWith(c, 'messages:read');
      const q = c.req.valid('query');
      if (q.inbox_id && !canSeeInbox(p, q.inbox_id)) throw notFound('inbox');
      if (q.last && q.after) throw new MailroomError('invalid_request', 'last reads the newest events; it cannot be combined with after');
      return c.json(await feed.read(p, { after: q.after, types: typesOf(q.types), inbox_id: q.inbox_id, limit: q.limit, last: q.last }), 200);
    },
  );

  // Served by a plain handler (the body is a stream, not a JSON schema) and documented by hand.
  app.openAPIRegistry.registerPath({
    method: 'get', path: '/v1/events/stream', operationId: 'streamEvents', tags: ['events'],
    summary: 'Server-Sent Events: the event log live, resumable with Last-Event-ID',
    description: 'Each event is one SSE frame: `id` is its cursor, `event` its type, `data` the event as JSON. ' +
      'Without Last-Event-ID or `after`, the stream starts with new events only. A `ready` frame opens the stream; ' +
      'a comment every 15 s keeps idle connections open.',
    request: {
      query: z.object({ after: z.string().optional(), types: z.string().optional(), inbox_id: z.string().optional() }),
      headers: z.object({ 'last-event-id': z.string().optional() }),
    },
    responses: { 200: { description: 'An event stream', content: { 'text/event-stream': { schema: z.string() } } }, ...errorResponses },
  });
  app.get('/v1/events/stream', async (c) => {
    const p = principalWith(c, 'messages:read');
    const inboxId = c.req.query('inbox_id') ?? null;
    if (inboxId && !canSeeInbox(p, inboxId)) throw notFound('inbox');
    const types = typesOf(c.req.query('types'));
    // Resume point: the browser's Last-Event-ID on reconnect wins over ?after=; with neither, the
    // stream starts at the current head (only new events), as a live feed should.
    const resume = c.req.header('last-event-id') || c.req.query('after') || null;
    // Checked before the 200 goes out: afterwards an error could only end the stream.
    if (resume) await feed.position(resume);
    const query: FeedQuery = { after: resume ?? (await feed.head()), types, inbox_id: inboxId, limit: STREAM_PAGE };

    return streamSSE(c, async (stream) => {
      let closed = false;
      let dirty = true;
      let wake: (() => void) | null = null;
      const unsubscribe = tail.subscribe(() => { dirty = true; wake?.(); });
      stream.onAbort(() => { closed = true; wake?.(); });
      try {
        await stream.writeSSE({ event: 'ready', data: JSON.stringify({ cursor: query.after }) , retry: 2000 });
        while (!closed) {
          if (dirty) {
            dirty = false;
            const pageOf = await feed.read(p, query);
            for (const e of pageOf.data) await stream.writeSSE({ id: e.cursor, event: e.type, data: JSON.stringify(e) });
            query.after = pageOf.next_cursor;
            if (pageOf.data.length === STREAM_PAGE) dirty = true; // more are waiting: read on at once
            continue;
          }
          const woke = await new Promise<boolean>((resolve) => {
            const t = setTimeout(() => resolve(false), KEEPALIVE_MS);
            wake = () => { clearTimeout(t); resolve(true); };
          });
          wake = null;
          if (!woke && !closed) await stream.write(': keep-alive\n\n');
        }
      } finally {
        unsubscribe();
      }
    });
  });
}
