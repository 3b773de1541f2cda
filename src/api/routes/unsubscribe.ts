import type { OpenAPIHono } from '@hono/zod-openapi';
import type { Unsubscribe } from '../../outbound/unsubscribe.ts';
import type { Env } from '../auth.ts';

/**
 * The recipient's side of List-Unsubscribe (RFC 8058). POST is the one-click action mailbox
 * providers send (body `List-Unsubscribe=One-Click`); GET only shows a confirmation form, because
 * link scanners and prefetchers follow GET links and must never unsubscribe anyone.
 */
const page = (title: string, body: string) =>
  `<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>${title}</title></head>` +
  `<body style="font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem">${body}</body></html>`;

export function unsubscribeRoutes(app: OpenAPIHono<Env>, unsubscribe: Unsubscribe): void {
  app.get('/unsubscribe/:token', async (c) => {
    const token = c.req.param('token');
    if (!(await unsubscribe.verify(token))) return c.html(page('Unknown link', '<p>This unsubscribe link is not valid.</p>'), 404);
    // The token is [a-z0-9_.] only (verified above), so it is safe inside the attribute.
    return c.html(page('Unsubscribe', `<p>Stop receiving these emails?</p><form method="post" action="/unsubscribe/${token}">` +
      '<input type="hidden" name="List-Unsubscribe" value="One-Click"><button type="submit">Unsubscribe</button></form>'));
  });
  app.post('/unsubscribe/:token', async (c) => {
    const ok = await unsubscribe.apply(c.req.param('token'), 'one-click');
    if (!ok) return c.html(page('Unknown link', '<p>This unsubscribe link is not valid.</p>'), 404);
    return c.html(page('Unsubscribed', '<p>You are unsubscribed. You will not receive these emails again.</p>'), 200);
  });
}
