import type { Kysely } from 'kysely';
import { MailroomError, notFound } from '../errors.ts';
import { newId } from '../ids.ts';
import type { Database, TokenRow } from '../store/schema.ts';
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
 * Principals by token hash, only for a process that is the database's sole writer (embedded mode,
 * guaranteed by the data-dir lock): there every API request would otherwise queue a token lookup on
 * PGlite's single connection (about 0.7 ms each at send rates, bench/README.md "Outbound"). Tokens
 * change only by revocation, which goes through `revokeToken` with this cache and drops the entry;
 * unknown tokens are not cached (a token created later must work). On PostgreSQL another process may
 * revoke a token at any moment, so every request asks the database.
 */
type CachedToken = { id: string; scopes: unknown; inbox_ids: string[] | null; last_used_at: Date | null };

export class TokenCache {
  static readonly MAX = 10_000;
  readonly #byHash = new Map<string, CachedToken>();

  get(hash: string) {
    return this.#byHash.get(hash);
  }

  set(hash: string, row: CachedToken): void {
    // Bounded: the oldest entry goes first (Map keeps insertion order).
    if (this.#byHash.size >= TokenCache.MAX) this.#byHash.delete(this.#byHash.keys().next().value!);
    this.#byHash.set(hash, row);
  }

  forget(tokenId: string): void {
    for (const [hash, row] of this.#byHash) if (row.id === tokenId) this.#byHash.delete(hash);
  }
}

export async function revokeToken(db: Kysely<Database>, id: string, cache: TokenCache | null = null): Promise<TokenView> {
  cache?.forget(id);
  const row = await db
    .updateTable('tokens')
    .set({ revoked_at: new Date() })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
  if (!row) throw notFound('token');
  return toTokenView(row);
}

/** Resolves a bearer secret to a principal, or null for an unknown or revoked token. */
export async function authenticate(db: Kysely<Database>, secret: string, cache: TokenCache | null = null): Promise<Principal | null> {
  const hash = hashToken(secret);
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
  cache?.set(hash, row);
  return {
    tokenId: row.id,
    scopes: new Set(row.scopes as Scope[]),
    inboxIds: row.inbox_ids ? new Set(row.inbox_ids) : null,
  };
}
