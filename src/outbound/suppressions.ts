import { sql, type Kysely } from 'kysely';
import { appendCancellations } from './recall.ts';
import { newId } from '../ids.ts';
import { clampLimit, decodeCursor, toPage, type Page, type PageRequest } from '../store/pagination.ts';
import type { Database, SuppressionTable } from '../store/schema.ts';
import { addressKey } from './addresses.ts';

/**
 * The suppression list and all its SQL. An address lands here after a hard bounce, a complaint or
 * an unsubscribe (or by hand), with a scope: `global` (nobody sends to it), `domain` (no inbox of
 * that sending domain) or `inbox`. Adding one also cancels every queued or deferred message to the
 * address within its scope, so a follow-up already in the queue never goes out.
 */
export type Scope = SuppressionTable['scope'];
export type Reason = SuppressionTable['reason'];

export interface SuppressionView {
  id: string;
  address: string;
  scope: Scope;
  scope_value: string | null;
  reason: Reason;
  detail: string | null;
  source_event_id: string | null;
  created_at: string;
}

const view = (r: { id: string; address: string; scope: Scope; scope_value: string; reason: Reason; detail: string | null; source_event_id: string | null; created_at: Date }): SuppressionView => ({
  id: r.id, address: r.address, scope: r.scope, scope_value: r.scope === 'global' ? null : r.scope_value, reason: r.reason,
  detail: r.detail, source_event_id: r.source_event_id, created_at: new Date(r.created_at).toISOString(),
});

/** The addresses among `addresses` that `inboxId` (of sending domain `domain`) may not send to, with why. */
export async function suppressedFor(db: Kysely<Database>, inboxId: string, domain: string, addresses: string[]): Promise<Map<string, Reason>> {
  return (await suppressedForSenders(db, [{ inboxId, domain, addresses }]))[0];
}

/**
 * `suppressedFor` for several senders in one query (the send worker checks a batch of messages of
 * any inboxes at once): one map per sender, in order.
 */
export async function suppressedForSenders(db: Kysely<Database>, senders: { inboxId: string; domain: string; addresses: string[] }[]): Promise<Map<string, Reason>[]> {
  const out = senders.map(() => new Map<string, Reason>());
  const keys = [...new Set(senders.flatMap((s) => s.addresses.map(addressKey)))];
  if (!keys.length) return out;
  const rows = await db
    .selectFrom('suppressions')
    .select(['address', 'reason', 'scope', 'scope_value'])
    .where('address', 'in', keys)
    .where((eb) => eb.or([
      eb('scope', '=', 'global'),
      eb.and([eb('scope', '=', 'domain'), eb('scope_value', 'in', [...new Set(senders.map((s) => s.domain))])]),
      eb.and([eb('scope', '=', 'inbox'), eb('scope_value', 'in', [...new Set(senders.map((s) => s.inboxId))])]),
    ]))
    .execute();
  senders.forEach((s, i) => {
    const wanted = new Set(s.addresses.map(addressKey));
    for (const r of rows) {
      const applies = r.scope === 'global' || (r.scope === 'domain' && r.scope_value === s.domain) || (r.scope === 'inbox' && r.scope_value === s.inboxId);
      if (applies && wanted.has(r.address)) out[i].set(r.address, r.reason);
    }
  });
  return out;
}

export interface NewSuppression {
  address: string;
  scope: Scope;
  scopeValue?: string | null;
  reason: Reason;
  detail?: string | null;
  sourceEventId?: string | null;
}

/**
 * Adds a suppression (idempotent on address + scope) and cancels what is queued to the address
 * within the scope, with one `message.suppressed` event per cancelled message. Runs in the caller's
 * transaction so a bounce, its suppression and the cancellations commit together.
 */
export async function addSuppression(trx: Kysely<Database>, s: NewSuppression, now = new Date()): Promise<SuppressionView> {
  const address = addressKey(s.address);
  const scopeValue = s.scope === 'global' ? '' : (s.scopeValue ?? '').toLowerCase();
  await trx
    .insertInto('suppressions')
    .values({ id: newId('sup'), scope: s.scope, scope_value: scopeValue, address, reason: s.reason, detail: s.detail ?? null, source_event_id: s.sourceEventId ?? null, created_at: now })
    .onConflict((oc) => oc.columns(['address', 'scope', 'scope_value']).doNothing())
    .execute();
  const row = await trx.selectFrom('suppressions').selectAll().where('address', '=', address).where('scope', '=', s.scope).where('scope_value', '=', scopeValue).executeTakeFirstOrThrow();

  // Cancel queued mail to the address, within the scope.
  const cancelled = await trx
    .updateTable('outbound_recipients')
    .set({ status: 'suppressed', response: `suppressed: ${row.reason}`, updated_at: now })
    .where(sql`lower(address)`, '=', address)
    .where('status', 'in', ['queued', 'deferred'])
    .where('message_id', 'in', (eb) => {
      let q = eb.selectFrom('outbound').innerJoin('inboxes', 'inboxes.id', 'outbound.inbox_id').select('outbound.id');
      if (s.scope === 'inbox') q = q.where('outbound.inbox_id', '=', scopeValue);
      if (s.scope === 'domain') q = q.where('inboxes.domain', '=', scopeValue);
      return q;
    })
    .returning(['message_id', 'address'])
    .execute();
  await appendCancellations(trx, cancelled, { reason: row.reason }, now);
  return view(row);
}

/** Newest first, cursor-paginated like every list. */
export async function listSuppressions(db: Kysely<Database>, f: PageRequest & { address?: string }): Promise<Page<SuppressionView>> {
  const limit = clampLimit(f.limit);
  const before = decodeCursor(f.cursor);
  let q = db.selectFrom('suppressions').selectAll().orderBy('id', 'desc').limit(limit + 1);
  if (f.address) q = q.where('address', '=', addressKey(f.address));
  if (before) q = q.where('id', '<', before);
  return toPage(await q.execute(), limit, view);
}

export async function deleteSuppression(db: Kysely<Database>, id: string): Promise<boolean> {
  const r = await db.deleteFrom('suppressions').where('id', '=', id).executeTakeFirst();
  return Number(r.numDeletedRows) > 0;
}
