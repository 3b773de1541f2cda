import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { Kysely } from 'kysely';
import { redeemSigninLink } from '../auth/signin-links.ts';
import { MailroomError } from '../errors.ts';
import type { Database } from '../store/schema.ts';
import type { Env } from '../api/auth.ts';

/**
 * The operator console (issue 8): static files under src/console/ui/, hand-written ES modules and
 * CSS with no build step, so the installed package serves exactly what is in the repository. The
 * console reads only the public REST API and the event stream with the token it is given; the
 * one route here besides the files is the exchange of a one-time sign-in link for a token.
 */
const UI_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'ui');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml', '.json': 'application/json', '.ico': 'image/x-icon',
};

/**
 * What the console page may do. Scripts only from this origin (no inline script, no eval), every
 * request to this origin, no plugin, no framing of the console by others. Inline styles are
 * allowed because a received HTML body shown in the sandboxed frame inherits this policy and is
 * styled inline; scripts stay forbidden there too, and images load only from data: URLs.
 */
export const CONSOLE_CSP = [
  "default-src 'none'", "script-src 'self'", "style-src 'self' 'unsafe-inline'", "img-src 'self' data:",
  "connect-src 'self'", "font-src 'self'", "frame-src 'self'", "base-uri 'none'", "form-action 'self'",
  "frame-ancestors 'none'", "object-src 'none'",
].join('; ');

interface Asset { body: Buffer; type: string; etag: string }

/** Every file of the UI, read once at start-up (about 100 KB): serving is a map lookup. */
export function loadConsoleAssets(dir = UI_DIR): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const full = path.join(d, name);
      if (statSync(full).isDirectory()) { walk(full); continue; }
      const type = TYPES[path.extname(name)];
      if (!type) continue;
      const body = readFileSync(full);
      const rel = path.relative(dir, full).split(path.sep).join('/');
      assets.set(rel, { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` });
    }
  };
  walk(dir);
  return assets;
}

export function consoleRoutes(app: OpenAPIHono<Env>, db: Kysely<Database>): void {
  const assets = loadConsoleAssets();
  const send = (c: Context<Env>, rel: string) => {
    const a = assets.get(rel);
    if (!a) throw new MailroomError('not_found', `no console file ${rel}`);
    const headers: Record<string, string> = {
      'content-type': a.type, etag: a.etag, 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
    };
    if (rel.endsWith('.html')) Object.assign(headers, { 'content-security-policy': CONSOLE_CSP, 'x-frame-options': 'DENY' });
    if (c.req.header('if-none-match') === a.etag) return c.body(null, 304, headers);
    return c.body(new Uint8Array(a.body), 200, headers);
  };
  app.get('/', (c) => send(c, 'index.html'));
  app.get('/console/*', (c) => send(c, c.req.path.slice('/console/'.length)));

  // A one-time link's code for an admin token (src/auth/signin-links.ts). Outside /v1: the caller
  // has no token yet, which is the point.
  app.post('/auth/signin', async (c) => {
    const body = await c.req.json().catch(() => null) as { code?: unknown } | null;
    if (!body || typeof body.code !== 'string') throw new MailroomError('invalid_request', 'send {"code": "<the code from the sign-in link>"}');
    const { token, view } = await redeemSigninLink(db, body.code);
    return c.json({ token, id: view.id, scopes: view.scopes }, 201);
  });
}

/** Total bytes of the console's files, for the size report (docs/console.md, the console test). */
export function consoleAssetBytes(): { files: number; bytes: number } {
  let bytes = 0;
  const assets = loadConsoleAssets();
  for (const a of assets.values()) bytes += a.body.length;
  return { files: assets.size, bytes };
}
