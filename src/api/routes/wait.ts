import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { EventTail } from '../../events/tail.ts';
import type { Inboxes } from '../../inboxes/inboxes.ts';
import type { Messages } from '../../messages/messages.ts';
import { principalWith, type Env } from '../auth.ts';
import { errorResponses, json, Message, WaitQuery } from '../schemas.ts';

const InboxParams = z.object({ inbox_id: z.string().max(64) });

const DEFAULT_WAIT_SECONDS = 30;

/**
 * Long-poll for a reply: returns the first matching message that arrives (or arrived since
 * `since`), or `{ message: null }` when the timeout passes. Driven by the event tail, so a waiting
 * request costs nothing between arrivals and answers within one tick of the reply's commit, from
 * whichever process received it.
 */
export function waitRoutes(app: OpenAPIHono<Env>, deps: { inboxes: Inboxes; messages: Messages; tail: EventTail; maxSeconds: number }): void {
  app.openapi(
    createRoute({
      method: 'get', path: '/v1/inboxes/{inbox_id}/messages/wait', operationId: 'waitForMessage', tags: ['messages'],
      summary: 'Wait for a message to arrive (long-poll), e.g. the reply in a thread',
      request: { params: InboxParams, query: WaitQuery },
      responses: { 200: json(z.object({ message: Message.nullable() }), 'The message, or null when the timeout passed first'), ...errorResponses },
    }),
    async (c) => {
      const p = principalWith(c, 'messages:read');
      const { inbox_id } = c.req.valid('param');
      const q = c.req.valid('query');
      await deps.inboxes.get(p, inbox_id); // not_found unless live and visible to the principal
      const since = q.since ? new Date(q.since) : new Date();
      const seconds = Math.min(q.timeout ?? DEFAULT_WAIT_SECONDS, deps.maxSeconds);
      // The client hanging up ends the wait (and its subscription) at once.
      const message = await deps.tail.waitFor(
        () => deps.messages.firstArrival(inbox_id, { since, thread_id: q.thread_id, from: q.from, a2a: q.a2a, a2a_correlation_id: q.a2a_correlation_id }),
        seconds * 1000,
        c.req.raw.signal,
      );
      return c.json({ message } as never, 200);
    },
  );
}
