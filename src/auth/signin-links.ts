import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import { MailroomError } from '../errors.ts';
import { newId } from '../ids.ts';
import type { Database } from '../store/schema.ts';
import { hashToken } from './token-format.ts';
import { createToken, type TokenView } from './tokens.ts';

/**
 * One-time sign-in links for the operator console: `<base>/#signin=<code>`. The code sits in the
 * URL fragment, which browsers never send to a server, so it stays out of access logs and proxies;
 * the console posts it to `POST /auth/signin`, which spends it and mints an admin token for that
 * browser. A link works once and for a day: a link left in terminal scrollback or shell history
 * is worthless once used or stale.
 */
export const SIGNIN_LINK_TTL_MS = 24 * 3600_000;

export async function createSigninLink(db: Kysely<Database>, base: string, ttlMs = SIGNIN_LINK_TTL_MS): Promise<{ url: string; expires_at: string }> {
  const code = randomBytes(24).toString('base64url');
  const now = new Date();
  const expires = new Date(now.getTime() + ttlMs);
  await db.insertInto('signin_links').values({ id: newId('sil'), hash: hashToken(code), created_at: now, expires_at: expires }).execute();
  return { url: `${base.replace(/\/$/, '')}/#signin=${code}`, expires_at: expires.toISOString() };
}

/** Spends a link's code for a new admin token; an unknown, used or expired code is refused alike. */
export async function redeemSigninLink(db: Kysely<Database>, code: string): Promise<{ token: string; view: TokenView }> {
  const refused = new MailroomError('unauthorized', 'this sign-in link is invalid, expired or already used; sign in with a token, or ask for a new link');
  if (!/^[A-Za-z0-9_-]{16,100}$/.test(code)) throw refused;
  return db.transaction().execute(async (trx) => {
    // The conditional UPDATE is the once-only guarantee: of two concurrent redemptions (two
    // processes, a double click) exactly one updates the row.
    const link = await trx.updateTable('signin_links').set({ used_at: new Date() })
      .where('hash', '=', hashToken(code)).where('used_at', 'is', null).where('expires_at', '>', new Date())
      .returning('id').executeTakeFirst();
    if (!link) throw refused;
    const created = await createToken(trx, { name: `console sign-in ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`, scopes: ['admin'] });
    await trx.updateTable('signin_links').set({ token_id: created.view.id }).where('id', '=', link.id).execute();
    return created;
  });
}
