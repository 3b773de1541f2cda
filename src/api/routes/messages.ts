import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { Messages } from '../../messages/messages.ts';
import type { Outbox } from '../../outbound/outbox.ts';
import { agentView } from '../../intel/agent-view.ts';
import { safeHtml } from '../../intel/safe-html.ts';
import { notFound } from '../../errors.ts';
import { principalWith, type Env } from '../auth.ts';
import { errorResponses, json, MessageQuery, OutboundMessage, Problem, MessageSummary, page, PageQuery, Thread, ThreadWithMessages } from '../schemas.ts';

const InboxParams = z.object({ inbox_id: z.string().max(64) });
const MessageParams = z.object({ message_id: z.string().max(64) });

/** A filename safe inside a quoted Content-Disposition parameter, with the full name in filename*. */
function contentDisposition(filename: string | null): string {
  if (!filename) return 'attachment';
  const ascii = filename.replace(/[^\x20-\x7e]|["\\]/g, '_');
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(filename)}`;
}

export function messageRoutes(app: OpenAPIHono<Env>, messages: Messages, outbox: Outbox): void {
  app.openapi(
    createRoute({
      method: 'get', path: '/v1/inboxes/{inbox_id}/messages', operationId: 'listMessages', tags: ['messages'], summary: 'List messages of an inbox, newest first',
      request: { params: InboxParams, query: MessageQuery },
      responses: { 200: json(page(MessageSummary), 'A page of messages'), ...errorResponses },
    }),
    async (c) => {
      const q = c.req.valid('query');
      const result = await messages.list(principalWith(c, 'messages:read'), c.req.valid('param').inbox_id, {
        ...q, since: q.since ? new Date(q.since) : undefined,
      });
      return c.json(result, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get', path: '/v1/messages/{message_id}', operationId: 'getMessage', tags: ['messages'], summary: 'Get a message as structured data, or (view=agent) as safe text for an LLM',
      request: {
        params: MessageParams,
        query: z.object({ view: z.enum(['full', 'agent']).optional().openapi({ description: 'agent: { message_id, view, text }: a compact rendering with the untrusted content fenced, links and hidden text neutralised.' }) }),
      },
      responses: { 200: json(OutboundMessage, 'The message; `delivery` is its sending state when Mailroom sent it, else null'), ...errorResponses },
    }),
    async (c) => {
      const m = await messages.get(principalWith(c, 'messages:read'), c.req.valid('param').message_id);
      if (c.req.valid('query').view === 'agent') return c.json({ message_id: m.id, view: 'agent', text: agentView(m) } as never, 200);
      return c.json({ ...m, delivery: m.direction === 'outbound' ? await outbox.delivery(m.id) : null } as never, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post', path: '/v1/messages/{message_id}/release', operationId: 'releaseMessage', tags: ['messages'], summary: 'Release a quarantined (or needs_human) message into its inbox',
      request: { params: MessageParams },
      responses: { 200: json(OutboundMessage, 'The released message'), 409: { description: 'The message is not held', content: { 'application/problem+json': { schema: Problem } } }, ...errorResponses },
    }),
    async (c) => c.json({ ...(await messages.release(principalWith(c, 'inboxes:write'), c.req.valid('param').message_id)), delivery: null } as never, 200),
  );

  app.openapi(
    createRoute({
      method: 'get', path: '/v1/messages/{message_id}/raw', operationId: 'getRawMessage', tags: ['messages'], summary: 'Download the raw message (message/rfc822)',
      request: { params: MessageParams },
      responses: { 200: { description: 'The raw message as stored', content: { 'message/rfc822': { schema: z.string() } } }, ...errorResponses },
    }),
    async (c) => {
      const { message_id } = c.req.valid('param');
      const raw = await messages.raw(principalWith(c, 'messages:read'), message_id);
      return c.body(new Uint8Array(raw), 200, { 'content-type': 'message/rfc822', 'content-disposition': `attachment; filename="${message_id}.eml"` });
    },
  );

  app.openapi(
    createRoute({
      method: 'get', path: '/v1/messages/{message_id}/html', operationId: 'getSafeHtml', tags: ['messages'],
      summary: 'The HTML body made safe to show a person: no scripts, no remote loads, hidden text revealed and marked',
      description: 'Sanitised with an allow list (src/intel/safe-html.ts). Elements hidden by style or the hidden attribute are made visible '
        + 'and carry data-mailroom-hidden="<why>"; X-Mailroom-Hidden-Elements counts them. Render it in a sandboxed frame all the same. '
        + 'A message without an HTML body answers 404 with code not_found.',
      request: { params: MessageParams },
      responses: { 200: { description: 'Safe HTML (a fragment)', content: { 'text/html': { schema: z.string() } } }, ...errorResponses },
    }),
    async (c) => {
      const m = await messages.get(principalWith(c, 'messages:read'), c.req.valid('param').message_id);
      if (m.html == null) throw notFound('HTML body');
      const { html, hidden } = safeHtml(m.html);
      return c.body(html, 200, {
        'content-type': 'text/html; charset=utf-8',
        // Opened directly in a browser tab, it still runs nothing and loads nothing.
        'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox",
        'x-content-type-options': 'nosniff',
        'x-mailroom-hidden-elements': String(hidden),
      });
    },
  );

  app.openapi(
    createRoute({
      method: 'get', path: '/v1/messages/{message_id}/attachments/{attachment_id}', operationId: 'getAttachment', tags: ['messages'], summary: 'Download an attachment',
      request: { params: MessageParams.extend({ attachment_id: z.string().max(64) }) },
      responses: { 200: { description: 'The attachment bytes', content: { 'application/octet-stream': { schema: z.string() } } }, ...errorResponses },
    }),
    async (c) => {
      const { message_id, attachment_id } = c.req.valid('param');
      const { meta, content } = await messages.attachment(principalWith(c, 'messages:read'), message_id, attachment_id);
      return c.body(new Uint8Array(content), 200, {
        // Served as a download, never rendered: an attachment is untrusted content.
        'content-type': /^[\w.+-]+\/[\w.+-]+$/.test(meta.content_type) ? meta.content_type : 'application/octet-stream',
        'content-disposition': contentDisposition(meta.filename),
        'x-content-type-options': 'nosniff',
        'x-content-sha256': meta.sha256,
      });
    },
  );

  app.openapi(
    createRoute({
      method: 'get', path: '/v1/inboxes/{inbox_id}/threads', operationId: 'listThreads', tags: ['threads'], summary: 'List threads of an inbox, newest first',
      request: { params: InboxParams, query: PageQuery },
      responses: { 200: json(page(Thread), 'A page of threads'), ...errorResponses },
    }),
    async (c) => c.json(await messages.listThreads(principalWith(c, 'messages:read'), c.req.valid('param').inbox_id, c.req.valid('query')), 200),
  );

  app.openapi(
    createRoute({
      method: 'get', path: '/v1/threads/{thread_id}', operationId: 'getThread', tags: ['threads'], summary: 'Get a thread with its messages, oldest first',
      request: {
        params: z.object({ thread_id: z.string().max(64) }),
        query: z.object({ include_held: z.enum(['true', 'false']).optional().openapi({ description: 'true: quarantined and needs_human messages too (they are left out by default).' }) }),
      },
      responses: { 200: json(ThreadWithMessages, 'The thread'), ...errorResponses },
    }),
    async (c) => c.json(await messages.getThread(principalWith(c, 'messages:read'), c.req.valid('param').thread_id, c.req.valid('query').include_held === 'true'), 200),
  );
}
