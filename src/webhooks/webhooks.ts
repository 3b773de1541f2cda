import { sql, type Kysely } from 'kysely';
import type { Principal } from '../auth/scopes.ts';
import { MailroomError, notFound } from '../errors.ts';
import { appendEvents, EVENT_TYPES } from '../events/events.ts';
import type { EventFeed, EventView } from '../events/feed.ts';
import { newId } from '../ids.ts';
import { clampLimit, decodeCursor, toPage, type Page, type PageRequest } from '../store/pagination.ts';
import type { Database, WebhookDeliveryTable, WebhookTable } from '../store/schema.ts';
import type { Selectable } from 'kysely';
import { newSecret } from './signing.ts';
import { resolveWebhookTarget, type AllowList, type Lookup } from './ssrf.ts';

/**
 * Webhook endpoints and their deliveries: the domain behind /v1/webhooks, and all its SQL except
 * the dispatcher's. An endpoint starts at the head of the event log (it receives what happens from
 * now on); replay re-queues what came after any cursor still within retention.
 */
export interface WebhookView {
  id: string;
  url: string;
  description: string | null;
  event_types: string[] | null;
  inbox_ids: string[] | null;
  enabled: boolean;
  disabled_reason: string | null;
  created_at: string;
  updated_at: string;
}

export interface DeliveryView {
  id: string;
  event_id: string;
  status: 'pending' | 'succeeded' | 'failed';
  attempts: number;
  last_status: number | null;
  last_error: string | null;
  next_attempt_at: string | null;
  created_at: string;
  delivered_at: string | null;
}

export interface WebhookInput {
  url?: string;
  description?: string | null;
  event_types?: string[] | null;
  inbox_ids?: string[] | null;
  enabled?: boolean;
}

type WebhookRow = Selectable<WebhookTable>;

/** A limited token sees (and manages) the endpoints that watch only inboxes it can see. */
const visibleTo = (p: Principal, w: WebhookRow): boolean =>
  p.inboxIds === null || ((w.inbox_ids ?? []).length > 0 && (w.inbox_ids ?? []).every((i) => p.inboxIds!.has(i)));

/**
 * Queues deliveries of `events` (a feed page read with the endpoint's type filter) for the ones
 * its inbox filter takes. The dispatcher's fan-out keeps existing rows; a replay resets them to
 * pending under their own ids, so receivers that dedupe by webhook-id stay correct. Returns how many.
 */
export async function queueDeliveries(db: Kysely<Database>, w: Pick<WebhookRow, 'id' | 'inbox_ids'>, events: EventView[], mode: 'new' | 'replay'): Promise<number> {
  const watched = events.filter((e) => !w.inbox_ids || (e.inbox_id !== null && w.inbox_ids.includes(e.inbox_id)));
  if (!watched.length) return 0;
  const now = new Date();
  await db.insertInto('webhook_deliveries')
    .values(watched.map((e) => ({ id: newId('whd'), webhook_id: w.id, event_id: e.id, event_cursor: e.cursor, status: 'pending' as const, attempts: 0, next_attempt_at: now, last_attempt_at: null, last_status: null, last_error: null, created_at: now, delivered_at: null })))
    .onConflict((oc) => {
      const c = oc.columns(['webhook_id', 'event_id']);
      return mode === 'new' ? c.doNothing() : c.doUpdateSet({ status: 'pending', attempts: 0, next_attempt_at: now, created_at: now, delivered_at: null });
    })
    .execute();
  return watched.length;
}

const toView = (w: WebhookRow): WebhookView => ({
  id: w.id, url: w.url, description: w.description, event_types: w.event_types ?? null, inbox_ids: w.inbox_ids ?? null,
  enabled: w.enabled, disabled_reason: w.disabled_reason, created_at: w.created_at.toISOString(), updated_at: w.updated_at.toISOString(),
});

const toDeliveryView = (d: Selectable<WebhookDeliveryTable>): DeliveryView => ({
  id: d.id, event_id: d.event_id, status: d.status, attempts: d.attempts, last_status: d.last_status, last_error: d.last_error,
  next_attempt_at: d.status === 'pending' ? d.next_attempt_at?.toISOString() ?? null : null,
  created_at: d.created_at.toISOString(), delivered_at: d.delivered_at?.toISOString() ?? null,
});

/** Inbox restriction a webhook may carry for this principal: a limited token can only watch its own inboxes. */
function inboxScope(p: Principal, requested: string[] | null | undefined): string[] | null {
  if (p.inboxIds === null) return requested?.length ? [...new Set(requested)] : null;
  const allowed = [...p.inboxIds];
  if (!requested?.length) return allowed;
  const outside = requested.filter((id) => !p.inboxIds!.has(id));
  if (outside.length) throw notFound(`inbox ${outside[0]}`);
  return [...new Set(requested)];
}

function checkTypes(types: string[] | null | undefined): string[] | null {
  if (!types?.length) return null;
  const unknown = types.filter((t) => !(EVENT_TYPES as readonly string[]).includes(t));
  if (unknown.length) throw new MailroomError('invalid_request', `unknown event type ${unknown.map((t) => `"${t}"`).join(', ')}; known: ${EVENT_TYPES.join(', ')}`);
  return [...new Set(types)];
}

export class Webhooks {
  readonly #db: Kysely<Database>;
  readonly #feed: EventFeed;
  readonly #lookup: Lookup;
  readonly #allow: AllowList;
  readonly #overlapMs: number;

  constructor(db: Kysely<Database>, feed: EventFeed, opts: { lookup: Lookup; allow: AllowList; rotationOverlapHours?: number }) {
    this.#db = db;
    this.#feed = feed;
    this.#lookup = opts.lookup;
    this.#allow = opts.allow;
    this.#overlapMs = (opts.rotationOverlapHours ?? 24) * 3_600_000;
  }

  /** Refused at registration if it reaches a private address now; delivery checks again each time. */
  async #checkUrl(url: string): Promise<void> {
    await resolveWebhookTarget(url, { lookup: this.#lookup, allow: this.#allow });
  }

  async #row(p: Principal, id: string): Promise<WebhookRow> {
    const row = await this.#db.selectFrom('webhooks').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row || !visibleTo(p, row)) throw notFound('webhook');
    return row;
  }

  async create(p: Principal, input: WebhookInput & { url: string }): Promise<WebhookView & { secret: string }> {
    const event_types = checkTypes(input.event_types);
    const inbox_ids = inboxScope(p, input.inbox_ids);
    await this.#checkUrl(input.url);
    const head = await this.#feed.head();
    const now = new Date();
    const row = await this.#db.insertInto('webhooks').values({
      id: newId('whk'), url: input.url, description: input.description ?? null,
      event_types: event_types ? JSON.stringify(event_types) : null, inbox_ids: inbox_ids ? JSON.stringify(inbox_ids) : null,
      secret: newSecret(), previous_secret: null, previous_secret_expires_at: null,
      enabled: input.enabled ?? true, disabled_reason: null,
      cursor: head ?? '0-0',
      created_at: now, updated_at: now,
    } as never).returningAll().executeTakeFirstOrThrow();
    return { ...toView(row), secret: row.secret };
  }

  async list(p: Principal): Promise<Page<WebhookView>> {
    const rows = await this.#db.selectFrom('webhooks').selectAll().orderBy('id', 'desc').limit(1000).execute();
    return { data: rows.filter((w) => visibleTo(p, w)).map(toView), next_cursor: null };
  }

  async get(p: Principal, id: string): Promise<WebhookView> {
    return toView(await this.#row(p, id));
  }

  async update(p: Principal, id: string, patch: WebhookInput): Promise<WebhookView> {
    await this.#row(p, id);
    const set: Record<string, unknown> = { updated_at: new Date() };
    if (patch.url !== undefined) { await this.#checkUrl(patch.url); set.url = patch.url; }
    if (patch.description !== undefined) set.description = patch.description;
    if (patch.event_types !== undefined) { const t = checkTypes(patch.event_types); set.event_types = t ? JSON.stringify(t) : null; }
    if (patch.inbox_ids !== undefined) { const i = inboxScope(p, patch.inbox_ids); set.inbox_ids = i ? JSON.stringify(i) : null; }
    if (patch.enabled !== undefined) {
      set.enabled = patch.enabled;
      // Re-enabled by a person: the failures that disabled it are theirs to replay, not retried blindly.
      set.disabled_reason = patch.enabled ? null : 'disabled by request';
    }
    const row = await this.#db.updateTable('webhooks').set(set as never).where('id', '=', id).returningAll().executeTakeFirstOrThrow();
    return toView(row);
  }

  async delete(p: Principal, id: string): Promise<void> {
    await this.#row(p, id);
    await this.#db.transaction().execute(async (trx) => {
      await sql`DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE webhook_id = ${id})`.execute(trx);
      await trx.deleteFrom('webhook_deliveries').where('webhook_id', '=', id).execute();
      await trx.deleteFrom('webhooks').where('id', '=', id).execute();
    });
  }

  /** A new secret; the old one keeps signing beside it for the overlap, so receivers can switch at leisure. */
  async rotateSecret(p: Principal, id: string): Promise<{ secret: string; previous_secret_expires_at: string }> {
    const row = await this.#row(p, id);
    const expires = new Date(Date.now() + this.#overlapMs);
    const secret = newSecret();
    await this.#db.updateTable('webhooks').set({ secret, previous_secret: row.secret, previous_secret_expires_at: expires, updated_at: new Date() }).where('id', '=', id).execute();
    return { secret, previous_secret_expires_at: expires.toISOString() };
  }

  async deliveries(p: Principal, id: string, q: PageRequest & { status?: 'pending' | 'succeeded' | 'failed' }): Promise<Page<DeliveryView>> {
    await this.#row(p, id);
    const limit = clampLimit(q.limit);
    const after = decodeCursor(q.cursor);
    let query = this.#db.selectFrom('webhook_deliveries').selectAll().where('webhook_id', '=', id);
    if (q.status) query = query.where('status', '=', q.status);
    if (after) query = query.where('id', '<', after);
    return toPage(await query.orderBy('id', 'desc').limit(limit + 1).execute(), limit, toDeliveryView);
  }

  /** Queues again every event after `after` that this endpoint watches, paging through the feed. */
  async replay(p: Principal, id: string, after: string | null): Promise<{ queued: number }> {
    const w = await this.#row(p, id);
    let cursor = after;
    let queued = 0;
    for (;;) {
      const page = await this.#feed.read(null, { after: cursor, types: w.event_types, limit: 500 });
      queued += await queueDeliveries(this.#db, w, page.data, 'replay');
      if (page.data.length < 500) break;
      cursor = page.next_cursor;
    }
    if (queued) await appendEvents(this.#db, [{ type: 'webhook.replayed', data: { webhook_id: id, after, queued } }]);
    return { queued };
  }
}
