import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { PgBoss } from 'pg-boss';
import { appendEvents, type NewEvent } from '../events/events.ts';
import { inTransaction, QUEUES } from '../jobs/boss.ts';
import type { Database } from '../store/schema.ts';
import { draftsDb, type DraftRequest, type DraftRow, type DraftStatus } from './tables.ts';

/** All SQL about drafts. Every state change is a compare-and-set on the status it expects. */

export interface NewDraft {
  id: string;
  inbox_id: string;
  reply_to_message_id: string | null;
  reply_all: boolean;
  request: DraftRequest;
  send_at: Date | null;
  client_id: string | null;
  token_id: string | null;
  campaign_id?: string | null;
  run_id?: string | null;
  step?: number | null;
}

/** Inserts a draft and its draft.created event; an existing one with the same client id or (run, step) wins and is returned. */
export async function insertDraft(db: Kysely<Database>, d: NewDraft, event: Omit<NewEvent, 'type'>): Promise<{ row: DraftRow; created: boolean }> {
  return db.transaction().execute(async (trx) => {
    const now = new Date();
    const inserted = await draftsDb(trx).insertInto('drafts').values({
      ...d, campaign_id: d.campaign_id ?? null, run_id: d.run_id ?? null, step: d.step ?? null, request: JSON.stringify(d.request),
      status: 'pending', created_at: now, updated_at: now,
    }).onConflict((oc) => oc.doNothing()).returningAll().executeTakeFirst();
    if (inserted) {
      await appendEvents(trx, [{ ...event, type: 'draft.created', data: { draft_id: d.id, ...(event.data ?? {}) } }], now);
      return { row: inserted, created: true };
    }
    let q = draftsDb(trx).selectFrom('drafts').selectAll();
    q = d.step !== undefined && d.step !== null && d.run_id ? q.where('run_id', '=', d.run_id).where('step', '=', d.step) : q.where('inbox_id', '=', d.inbox_id).where('client_id', '=', d.client_id);
    const existing = await q.executeTakeFirst();
    if (!existing) throw new Error(`draft ${d.id}: insert conflicted but no existing draft was found`);
    return { row: existing, created: false };
  });
}

export const getDraft = (db: Kysely<Database>, id: string) => draftsDb(db).selectFrom('drafts').selectAll().where('id', '=', id).executeTakeFirst();

export const draftForStep = (db: Kysely<Database>, runId: string, step: number) =>
  draftsDb(db).selectFrom('drafts').selectAll().where('run_id', '=', runId).where('step', '=', step).executeTakeFirst();

export interface DraftFilter {
  inboxIds: ReadonlySet<string> | null;
  inbox_id?: string;
  status?: DraftStatus;
  campaign_id?: string;
  after: string | null;
  limit: number;
}

export async function listDrafts(db: Kysely<Database>, f: DraftFilter): Promise<DraftRow[]> {
  let q = draftsDb(db).selectFrom('drafts').selectAll().orderBy('id', 'desc').limit(f.limit + 1);
  if (f.inboxIds) q = q.where('inbox_id', 'in', f.inboxIds.size ? [...f.inboxIds] : ['']);
  if (f.inbox_id) q = q.where('inbox_id', '=', f.inbox_id);
  if (f.status) q = q.where('status', '=', f.status);
  if (f.campaign_id) q = q.where('campaign_id', '=', f.campaign_id);
  if (f.after) q = q.where('id', '<', f.after);
  return q.execute();
}

/**
 * Moves a draft from `from` to a new state, with its event, in one transaction; null when the
 * draft was not in `from` any more (someone else approved or rejected it first). `sendJob`: the
 * draft-send job that will send it, inserted in the same transaction (so an approval is never
 * recorded without the send that follows it, nor the reverse).
 */
export async function transition(
  db: Kysely<Database>, boss: PgBoss, id: string, from: DraftStatus[],
  set: Partial<{ status: DraftStatus; request: DraftRequest; send_at: Date | null; reviewed_by: string | null; review_note: string | null; error: { code: string; message: string } | null; message_id: string | null; approved_at: Date | null; sent_at: Date | null }>,
  o: { event?: NewEvent; sendJob?: { startAfter: Date | null } } = {},
): Promise<DraftRow | null> {
  return db.transaction().execute(async (trx) => {
    const now = new Date();
    const jobId = o.sendJob ? randomUUID() : undefined;
    const row = await draftsDb(trx).updateTable('drafts')
      .set({ ...set, ...(set.request ? { request: JSON.stringify(set.request) } : {}), ...(jobId ? { job_id: jobId } : {}), updated_at: now } as never)
      .where('id', '=', id).where('status', 'in', from)
      .returningAll().executeTakeFirst();
    if (!row) return null;
    if (o.event) await appendEvents(trx, [o.event], now);
    if (jobId) {
      await boss.insert(QUEUES.draft, [{ id: jobId, data: { draft_id: id }, startAfter: o.sendJob!.startAfter ?? undefined }], { db: inTransaction(trx) });
    }
    return row;
  });
}

/** A campaign step's draft became this message: in the run's transaction, with its event. */
export async function markDraftSentIn(trx: Kysely<Database>, draft: DraftRow, message: { id: string; thread_id: string }): Promise<void> {
  const now = new Date();
  const done = await draftsDb(trx).updateTable('drafts').set({ status: 'sent', message_id: message.id, sent_at: now, updated_at: now })
    .where('id', '=', draft.id).where('status', '=', 'approved').returning('id').executeTakeFirst();
  if (done) {
    await appendEvents(trx, [{
      type: 'draft.sent', inbox_id: draft.inbox_id, message_id: message.id, thread_id: message.thread_id, trace_id: draft.request.trace_id ?? null,
      data: { draft_id: draft.id, campaign_id: draft.campaign_id, run_id: draft.run_id, message_id: message.id },
    }], now);
  }
}

/**
 * Cancels a run's step drafts not yet sent (the run ended: a reply, a bounce, a stop), with their
 * events, in the caller's transaction. An answer the run drafted to a reply (no step) stays: it is
 * what the run ended with.
 */
export async function cancelRunDrafts(trx: Kysely<Database>, runId: string, reason: string): Promise<void> {
  const now = new Date();
  const error = { code: 'run_finished', message: reason.slice(0, 500) };
  const rows = await draftsDb(trx).updateTable('drafts')
    .set({ status: 'cancelled', error: JSON.stringify(error), updated_at: now })
    .where('run_id', '=', runId).where('step', 'is not', null).where('status', 'in', ['pending', 'approved'])
    .returning(['id', 'inbox_id', 'campaign_id', 'run_id']).execute();
  await appendEvents(trx, rows.map((r) => ({ type: 'draft.cancelled' as const, inbox_id: r.inbox_id, data: { draft_id: r.id, campaign_id: r.campaign_id, run_id: r.run_id, ...error } })), now);
}

/**
 * A message received in the thread of `replyTo` after `since`: the conversation moved on since the
 * draft was written (or approved), so sending it unchanged may answer the wrong thing.
 */
export async function newerInbound(db: Kysely<Database>, replyTo: string, since: Date): Promise<{ id: string; from_address: string | null } | undefined> {
  return db.selectFrom('messages as m')
    .innerJoin('messages as p', 'p.thread_id', 'm.thread_id')
    .select(['m.id', 'm.from_address'])
    .where('p.id', '=', replyTo)
    .where('m.direction', '=', 'inbound')
    .where('m.received_at', '>', since)
    .where('m.id', '!=', replyTo)
    .orderBy('m.received_at').limit(1).executeTakeFirst();
}
