import { sql, type Kysely } from 'kysely';
import { appendEvents } from '../events/events.ts';
import { MailroomError, notFound } from '../errors.ts';
import { newId } from '../ids.ts';
import { canSeeInbox, type Principal } from '../auth/scopes.ts';
import { clampLimit, decodeCursor, toPage, type Page, type PageRequest } from '../store/pagination.ts';
import { changeNotice, type ChangeNotices } from '../store/change-notices.ts';
import type { Database, InboxRow } from '../store/schema.ts';
import { SharedCache } from '../store/shared-cache.ts';
import { generateUsername, RESERVED, validUsername } from './usernames.ts';

/** Inboxes: the domain functions and all their SQL. */

export interface InboxView {
  id: string;
  address: string;
  username: string;
  domain: string;
  display_name: string | null;
  metadata: Record<string, unknown>;
  client_id: string | null;
  /** Everything sent from it carries List-Unsubscribe (one-click). */
  marketing: boolean;
  /** What received mail at or above the injection threshold gets. */
  injection_policy: { action: 'allow' | 'flag' | 'quarantine' | 'needs_human'; threshold: number };
  created_at: string;
  updated_at: string;
}

export const toInboxView = (r: InboxRow): InboxView => ({
  id: r.id,
  address: r.address,
  username: r.username,
  domain: r.domain,
  display_name: r.display_name,
  metadata: r.metadata,
  client_id: r.client_id,
  marketing: Boolean(r.marketing),
  injection_policy: { action: r.injection_action, threshold: Number(r.injection_threshold) },
  created_at: r.created_at.toISOString(),
  updated_at: r.updated_at.toISOString(),
});

export interface CreateInboxInput {
  username?: string;
  domain?: string;
  display_name?: string | null;
  metadata?: Record<string, unknown>;
  client_id?: string;
  marketing?: boolean;
  injection_policy?: { action: 'allow' | 'flag' | 'quarantine' | 'needs_human'; threshold: number };
}

const isUniqueViolation = (err: unknown, constraint?: string) =>
  (err as { code?: string })?.code === '23505' &&
  (!constraint || String((err as { constraint?: string; message?: string }).constraint ?? (err as Error).message).includes(constraint));

export interface InboxCounts { messages: number; inbound: number; outbound: number; held: number; threads: number }

export class Inboxes {
  readonly #db: Kysely<Database>;
  readonly #domains: string[];

  /**
   * Address → live inbox id (null: no such inbox), only when this process is the database's sole
   * writer (embedded mode, guaranteed by the data-dir lock). There every RCPT would otherwise queue
   * behind ingest work on PGlite's single connection; every inbox change goes through this object,
   * so the cache is exact. On PostgreSQL another process may create or delete an inbox at any time,
   * so the lookup always asks the database.
   */
  readonly #addressCache: Map<string, string | null> | null;
  /**
   * Live inbox rows by id (store/shared-cache.ts): every send reads its inbox, and on PGlite each
   * read queues on the one session (about 1 ms at send rates, bench/README.md "Outbound"), on
   * PostgreSQL it is a round trip. `update` and `delete` drop the entry and, on PostgreSQL, notify
   * every other process (change-notices.ts).
   */
  readonly #rowCache: SharedCache<InboxRow>;
  /**
   * Embedded: inboxes being or been deleted, never cached again, so a read racing the delete cannot
   * bring the row back (ids are never reused). On PostgreSQL the delete's own notice does that (the
   * cache's epoch), and this set would only grow.
   */
  readonly #gone = new Set<string>();
  static readonly MAX_CACHED_ROWS = 10_000;

  /** No notices: this process is the database's sole writer (embedded), so its own changes are all there are. */
  readonly #soleWriter: boolean;

  /** `notices` null: this process is the database's sole writer (embedded, the data-dir lock). */
  constructor(db: Kysely<Database>, domains: string[], opts: { notices: ChangeNotices | null }) {
    this.#db = db;
    this.#domains = domains;
    this.#soleWriter = !opts.notices;
    this.#addressCache = this.#soleWriter ? new Map() : null;
    this.#rowCache = new SharedCache({ max: Inboxes.MAX_CACHED_ROWS, notices: opts.notices, topic: 'inbox', idOf: (r) => r.id });
  }

  #remember(row: InboxRow, stamp: number): void {
    if (this.#gone.has(row.id)) return;
    this.#rowCache.set(row.id, row, stamp);
  }

  get domains(): readonly string[] {
    return this.#domains;
  }

  /** Creates an inbox. With a client_id already used, returns that inbox instead (`created: false`). */
  async create(input: CreateInboxInput): Promise<{ inbox: InboxView; created: boolean }> {
    if (input.client_id) {
      const existing = await this.#byClientId(input.client_id);
      if (existing) return { inbox: toInboxView(existing), created: false };
    }
    const domain = (input.domain ?? this.#domains[0]).toLowerCase();
    if (!this.#domains.includes(domain)) {
      throw new MailroomError('unknown_domain', `domain "${domain}" is not served by this Mailroom; served domains: ${this.#domains.join(', ')}`);
    }
    const explicit = input.username?.toLowerCase();
    if (explicit !== undefined && !validUsername(explicit)) {
      throw new MailroomError('invalid_request', 'username must be 1-64 characters of a-z, 0-9, ".", "_" or "-", starting and ending with a letter or digit');
    }
    for (let attempt = 0; ; attempt++) {
      const username = explicit ?? generateUsername();
      if (!explicit && RESERVED.has(username)) continue;
      const now = new Date();
      try {
        // The inbox and its inbox.created event commit together.
        const row = await this.#db.transaction().execute(async (trx) => {
          const created = await trx
          .insertInto('inboxes')
          .values({
            id: newId('inb'),
            username,
            domain,
            address: `${username}@${domain}`,
            display_name: input.display_name ?? null,
            metadata: JSON.stringify(input.metadata ?? {}),
            client_id: input.client_id ?? null,
            marketing: input.marketing ?? false,
            ...(input.injection_policy ? { injection_action: input.injection_policy.action, injection_threshold: input.injection_policy.threshold } : {}),
            created_at: now,
            updated_at: now,
          })
          .returningAll()
          .executeTakeFirstOrThrow();
          await appendEvents(trx, [{ type: 'inbox.created', inbox_id: created.id, data: { address: created.address, client_id: created.client_id } }], now);
          return created;
        });
        this.#addressCache?.set(row.address, row.id);
        return { inbox: toInboxView(row), created: true };
      } catch (err) {
        if (isUniqueViolation(err, 'client_id') && input.client_id) {
          // Lost a race with a concurrent create carrying the same client_id: that one is ours too.
          const existing = await this.#byClientId(input.client_id);
          if (existing) return { inbox: toInboxView(existing), created: false };
        }
        if (isUniqueViolation(err, 'address')) {
          if (explicit) throw new MailroomError('username_taken', `the address ${explicit}@${domain} is already taken`);
          if (attempt < 20) continue;
        }
        throw err;
      }
    }
  }

  #byClientId(clientId: string) {
    return this.#db.selectFrom('inboxes').selectAll().where('client_id', '=', clientId).where('deleted_at', 'is', null).executeTakeFirst();
  }

  async list(p: Principal, page: PageRequest): Promise<Page<InboxView>> {
    const limit = clampLimit(page.limit);
    const after = decodeCursor(page.cursor);
    let q = this.#db.selectFrom('inboxes').selectAll().where('deleted_at', 'is', null);
    if (p.inboxIds) q = p.inboxIds.size ? q.where('id', 'in', [...p.inboxIds]) : q.where(({ lit }) => lit(false));
    if (after) q = q.where('id', '<', after);
    const rows = await q.orderBy('id', 'desc').limit(limit + 1).execute();
    return toPage(rows, limit, toInboxView);
  }

  /**
   * Message and thread counts per inbox, for an operator's overview (`?include=counts`). Two
   * grouped counts over the (inbox_id, …) indexes for a whole page of inboxes, not one per inbox.
   */
  async counts(ids: string[]): Promise<Map<string, InboxCounts>> {
    const out = new Map<string, InboxCounts>(ids.map((id) => [id, { messages: 0, inbound: 0, outbound: 0, held: 0, threads: 0 }]));
    if (!ids.length) return out;
    const rows = await this.#db.selectFrom('messages')
      .select(['inbox_id', 'direction', sql<boolean>`coalesce(disposition in ('quarantined', 'needs_human'), false)`.as('held'), sql<string>`count(*)`.as('n')])
      .where('inbox_id', 'in', ids).groupBy(['inbox_id', 'direction', 'held']).execute();
    for (const r of rows) {
      const c = out.get(r.inbox_id)!;
      const n = Number(r.n);
      c.messages += n;
      if (r.direction === 'inbound') c.inbound += n; else c.outbound += n;
      if (r.held) c.held += n;
    }
    const threads = await this.#db.selectFrom('threads').select(['inbox_id', sql<string>`count(*)`.as('n')]).where('inbox_id', 'in', ids).groupBy('inbox_id').execute();
    for (const t of threads) out.get(t.inbox_id)!.threads = Number(t.n);
    return out;
  }

  /** The inbox if it exists, is live and the principal may see it; otherwise not_found. */
  async get(p: Principal, id: string): Promise<InboxView> {
    return toInboxView(await this.#visibleRow(p, id));
  }

  async #visibleRow(p: Principal, id: string): Promise<InboxRow> {
    if (!canSeeInbox(p, id)) throw notFound('inbox');
    const cached = this.#rowCache.get(id);
    if (cached) return cached;
    const stamp = this.#rowCache.stamp();
    const row = await this.#db.selectFrom('inboxes').selectAll().where('id', '=', id).where('deleted_at', 'is', null).executeTakeFirst();
    if (!row) throw notFound('inbox');
    this.#remember(row, stamp);
    return row;
  }

  async update(p: Principal, id: string, patch: { display_name?: string | null; metadata?: Record<string, unknown>; marketing?: boolean; injection_policy?: CreateInboxInput['injection_policy'] }): Promise<InboxView> {
    await this.#visibleRow(p, id);
    this.#rowCache.forget(id);
    // One statement: the change and its notice to the other processes commit together.
    const row = await this.#db.with('changed', (db) => db
      .updateTable('inboxes')
      .set({
        ...(patch.display_name !== undefined ? { display_name: patch.display_name } : {}),
        ...(patch.metadata !== undefined ? { metadata: JSON.stringify(patch.metadata) } : {}),
        ...(patch.marketing !== undefined ? { marketing: patch.marketing } : {}),
        ...(patch.injection_policy ? { injection_action: patch.injection_policy.action, injection_threshold: patch.injection_policy.threshold } : {}),
        updated_at: new Date(),
      })
      .where('id', '=', id)
      .where('deleted_at', 'is', null)
      .returningAll())
      .selectFrom('changed').selectAll().select(changeNotice('inbox', sql.ref('changed.id')).as('notice'))
      .executeTakeFirst();
    if (!row) throw notFound('inbox');
    const { notice: _, ...changed } = row;
    return toInboxView(changed);
  }

  /**
   * Deletes an inbox: from now on its address is refused over SMTP and its messages are gone from
   * the API. The row is kept (soft delete) so stored mail stays consistent; the address is freed.
   */
  async delete(p: Principal, id: string): Promise<void> {
    const row = await this.#visibleRow(p, id);
    this.#addressCache?.set(row.address, null);
    if (this.#soleWriter) this.#gone.add(id);
    this.#rowCache.forget(id);
    await this.#db.transaction().execute(async (trx) => {
      await trx.updateTable('inboxes').set({ deleted_at: new Date(), client_id: null }).where('id', '=', id).execute();
      await sql`SELECT ${changeNotice('inbox', id)}`.execute(trx);
      await appendEvents(trx, [{ type: 'inbox.deleted', inbox_id: id, data: { address: row.address } }]);
    });
  }

  /** The live inbox id for an address on a served domain, or null. Used by the SMTP recipient policy. */
  async idForAddress(username: string, domain: string): Promise<string | null> {
    const address = `${username}@${domain}`;
    const cached = this.#addressCache?.get(address);
    if (cached !== undefined) return cached;
    const row = await this.#db
      .selectFrom('inboxes')
      .select('id')
      .where('address', '=', address)
      .where('deleted_at', 'is', null)
      .executeTakeFirst();
    // Bounded: a flood of RCPTs to made-up addresses must not grow memory without limit.
    if (this.#addressCache && this.#addressCache.size < 100_000) this.#addressCache.set(address, row?.id ?? null);
    return row?.id ?? null;
  }
}
