import { sql, type Kysely } from 'kysely';
import { MailroomError, notFound } from '../errors.ts';
import { newId } from '../ids.ts';
import { changeNotice, type ChangeNotices } from '../store/change-notices.ts';
import type { Database, TokenRow } from '../store/schema.ts';
import { SharedCache } from '../store/shared-cache.ts';
import { SCOPES, type Principal, type Scope } from './scopes.ts';
import { displayPrefix, generateToken, hashToken } from './token-format.ts';

/** All SQL about tokens. */

export interface TokenView {
  id: string;
  name: string | null;
  prefix: string;
  scopes: Scope[];
  inbox_ids: string[] | null;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

export const toTokenView = (r: TokenRow): TokenView => ({
  id: r.id,
  name: r.name,
  prefix: r.prefix,
  scopes: r.scopes as Scope[],
  inbox_ids: r.inbox_ids,
  created_at: r.created_at.toISOString(),
  last_used_at: r.last_used_at?.toISOString() ?? null,
  revoked_at: r.revoked_at?.toISOString() ?? null,
});

export interface CreateTokenInput {
  name?: string | null;
  scopes: Scope[];
  inbox_ids?: string[] | null;
  /** Use this secret instead of generating one (MAILROOM_ADMIN_TOKEN). */
  secret?: string;
}

export async function createToken(db: Kysely<Database>, input: CreateTokenInput): Promise<{ token: string; view: TokenView }> {
  for (const s of input.scopes) {
    if (!SCOPES.includes(s)) throw new MailroomError('invalid_request', `unknown scope "${s}"; valid scopes: ${SCOPES.join(', ')}`);
  }
  if (input.inbox_ids) {
    const ids = [...new Set(input.inbox_ids)];
    const found = ids.length
      ? await db.selectFrom('inboxes').select('id').where('id', 'in', ids).where('deleted_at', 'is', null).execute()
      : [];
    const missing = ids.filter((id) => !found.some((f) => f.id === id));
    if (missing.length) throw new MailroomError('invalid_request', `unknown inbox ids: ${missing.join(', ')}`);
  }
  const token = input.secret ?? generateToken();
  const row = await db
    .insertInto('tokens')
    .values({
      id: newId('tok'),
      name: input.name ?? null,
      hash: hashToken(token),
      prefix: displayPrefix(token),
      scopes: [...new Set(input.scopes)],
      inbox_ids: input.inbox_ids ? [...new Set(input.inbox_ids)] : null,
      created_at: new Date(),
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return { token, view: toTokenView(row) };
}

export async function listTokens(db: Kysely<Database>): Promise<TokenView[]> {
  const rows = await db.selectFrom('tokens').selectAll().orderBy('id', 'desc').execute();
  return rows.map(toTokenView);
}

export async function tokenById(db: Kysely<Database>, id: string): Promise<TokenView> {
  const row = await db.selectFrom('tokens').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row) throw notFound('token');
  return toTokenView(row);
}

/**
 * Principals by token hash (store/shared-cache.ts): every API request would otherwise read its
 * token (about 0.7 ms each on PGlite's one session at send rates, bench/README.md "Outbound"; a
 * round trip on PostgreSQL). Tokens change only by revocation, which goes through `revokeToken`:
 * it drops the entry here and, on PostgreSQL, notifies every other process with the change.
 * Unknown tokens are not cached (a token created later must work).
 */
type CachedToken = { id: string; scopes: unknown; inbox_ids: string[] | null; last_used_at: Date | null };

export class TokenCache extends SharedCache<CachedToken> {
  static readonly MAX = 10_000;

  constructor(notices: ChangeNotices | null = null) {
    super({ max: TokenCache.MAX, notices, topic: 'token', idOf: (t) => t.id });
  }
}

export async function revokeToken(db: Kysely<Database>, id: string, cache: TokenCache | null = null): Promise<TokenView> {
  cache?.forget(id);
  // One statement: the revocation and its notice to the other processes commit together.
  const row = await db
    .with('revoked', (q) => q.updateTable('tokens').set({ revoked_at: new Date() }).where('id', '=', id).returningAll())
    .selectFrom('revoked')
    .selectAll()
    .select(changeNotice('token', sql.ref('revoked.id')).as('notice'))
    .executeTakeFirst();
  if (!row) throw notFound('token');
  const { notice: _, ...token } = row;
  return toTokenView(token);
}

/** Resolves a bearer secret to a principal, or null for an unknown or revoked token. */
export async function authenticate(db: Kysely<Database>, secret: string, cache: TokenCache | null = null): Promise<Principal | null> {
  const hash = hashToken(secret);
  const stamp = cache?.stamp() ?? 0;
  const row = cache?.get(hash) ?? await db
    .selectFrom('tokens')
    .select(['id', 'scopes', 'inbox_ids', 'last_used_at'])
    .where('hash', '=', hash)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  if (!row) return null;
  // last_used_at is advisory; updating it at most once a minute keeps reads from turning into writes.
  if (!row.last_used_at || Date.now() - row.last_used_at.getTime() > 60_000) {
    row.last_used_at = new Date();
    await db.updateTable('tokens').set({ last_used_at: row.last_used_at }).where('id', '=', row.id).execute();
  }
  cache?.set(hash, row, stamp);
  return {
    tokenId: row.id,
    scopes: new Set(row.scopes as Scope[]),
    inboxIds: row.inbox_ids ? new Set(row.inbox_ids) : null,
  };
}
