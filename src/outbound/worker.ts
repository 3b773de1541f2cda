import { sql } from 'kysely';
import type { PgBoss } from 'pg-boss';
import type { Config } from '../config/config.ts';
import { appendEvents, type NewEvent } from '../events/events.ts';
import { inTransaction, QUEUES, retryOrphanedJobs } from '../jobs/boss.ts';
import type { Logger } from '../log.ts';
import type { Store } from '../store/database.ts';
import { addressKey } from './addresses.ts';
import { classifySmtpReply } from './bounces/classify.ts';
import { addSuppression, suppressedFor } from './suppressions.ts';
import type { Attempt, Transports } from './transports.ts';

/**
 * The send job: one outbound message → its transports, with every state change committed before
 * and after the network step (never during: PGlite has one connection).
 *
 *   1. recipients still due (queued / deferred / sending) are checked against the suppression list;
 *   2. they are marked `sending` and committed;
 *   3. the message is handed to the transports;
 *   4. the outcomes are committed with their events: sent, bounced (5xx, which also suppresses the
 *      address), deferred (4xx, network) with the next attempt queued in the same transaction.
 *
 * The duplicate window: a crash between a remote `250` (step 3) and the commit of step 4 leaves the
 * recipient `sending`; the job is retried and the recipient is sent again — the same bytes, so the
 * same Message-ID, and at most one extra copy per crash. Nothing is ever lost: a job whose worker
 * died is retried (heartbeat on PostgreSQL; embedded start-up fails it explicitly).
 */
export interface SendJob { message_id: string }

const MAX_RETRY_DELAY_SECONDS = 3600;

/** Exponential backoff with ±25 % jitter, so a burst deferred together does not retry together. */
export function retryDelaySeconds(attempt: number, baseSeconds: number, random = Math.random): number {
  const exp = Math.min(baseSeconds * 2 ** Math.max(0, attempt - 1), MAX_RETRY_DELAY_SECONDS);
  return Math.max(1, Math.round(exp * (0.75 + random() * 0.5)));
}

export async function processSend(deps: { store: Store; boss: PgBoss; transports: Transports; config: Config; log: Logger }, messageId: string): Promise<void> {
  const { store, boss, transports, config } = deps;
  const { db } = store;
  const o = await db.selectFrom('outbound').innerJoin('messages', 'messages.id', 'outbound.id').innerJoin('inboxes', 'inboxes.id', 'outbound.inbox_id')
    .select(['outbound.id', 'outbound.inbox_id', 'outbound.envelope_from', 'outbound.raw_sha256', 'outbound.trace_id', 'outbound.expires_at', 'outbound.attempts', 'messages.thread_id', 'inboxes.domain'])
    .where('outbound.id', '=', messageId).executeTakeFirst();
  if (!o) return;
  const due = await db.selectFrom('outbound_recipients').selectAll().where('message_id', '=', messageId).where('status', 'in', ['queued', 'deferred', 'sending']).orderBy('id').execute();
  if (!due.length) return;
  const base = { inbox_id: o.inbox_id, message_id: o.id, thread_id: o.thread_id, trace_id: o.trace_id };
  const now = new Date();

  if (now >= new Date(o.expires_at)) {
    await db.transaction().execute(async (trx) => {
      await trx.updateTable('outbound_recipients').set({ status: 'failed', response: sql`coalesce(response, '') || ' (gave up: the message lifetime ran out)'`, updated_at: now })
        .where('id', 'in', due.map((r) => r.id)).execute();
      await appendEvents(trx, due.map((r) => ({ type: 'message.failed' as const, ...base, data: { recipient: r.address, reason: 'lifetime_exceeded', last_response: r.response } })), now);
    });
    return;
  }

  // 1–2. Suppressed since the message was queued → cancelled; the rest → sending.
  const suppressed = await suppressedFor(db, o.inbox_id, o.domain, due.map((r) => r.address));
  const go = due.filter((r) => !suppressed.has(addressKey(r.address)));
  await db.transaction().execute(async (trx) => {
    const off = due.filter((r) => suppressed.has(addressKey(r.address)));
    if (off.length) {
      await trx.updateTable('outbound_recipients').set({ status: 'suppressed', updated_at: now }).where('id', 'in', off.map((r) => r.id)).execute();
      await appendEvents(trx, off.map((r) => ({ type: 'message.suppressed' as const, ...base, data: { recipient: r.address, reason: suppressed.get(addressKey(r.address)), cancelled: true } })), now);
    }
    if (go.length) {
      await trx.updateTable('outbound_recipients').set((eb) => ({ status: 'sending', attempts: eb('attempts', '+', 1), updated_at: now })).where('id', 'in', go.map((r) => r.id)).execute();
      await trx.updateTable('outbound').set((eb) => ({ attempts: eb('attempts', '+', 1) })).where('id', '=', o.id).execute();
    }
  });
  if (!go.length) return;

  // 3. The network step.
  const raw = await store.blobs.get(o.raw_sha256);
  if (!raw) throw new Error(`raw message ${o.raw_sha256} of ${o.id} is missing from the blob store`);
  const attempts: Attempt[] = await transports.deliver({ envelopeFrom: o.envelope_from, recipients: go.map((r) => r.address), raw });
  const byAddress = new Map(attempts.map((a) => [addressKey(a.address), a]));

  // 4. Outcomes.
  const done = new Date();
  const attemptNo = o.attempts + 1;
  const nextAt = new Date(done.getTime() + retryDelaySeconds(attemptNo, config.outbound.retryBaseSeconds) * 1000);
  const giveUp = nextAt >= new Date(o.expires_at);
  await db.transaction().execute(async (trx) => {
    const events: NewEvent[] = [];
    let deferred = 0;
    for (const r of go) {
      const a = byAddress.get(addressKey(r.address)) ?? { address: r.address, outcome: 'deferred' as const, code: null, status: null, response: 'no result from the transport', transport: transports.routeOf(r.address) };
      const common = { response: a.response, transport: a.transport, updated_at: done };
      if (a.outcome === 'sent') {
        await trx.updateTable('outbound_recipients').set({ ...common, status: 'sent', sent_at: done }).where('id', '=', r.id).execute();
        events.push({ type: 'message.sent', ...base, data: { recipient: r.address, transport: a.transport, response: a.response } });
      } else if (a.outcome === 'bounced') {
        const { reason } = classifySmtpReply(a.code ?? 550, a.status, a.response);
        await trx.updateTable('outbound_recipients').set({ ...common, status: 'bounced', bounce_type: 'hard', bounce_reason: reason }).where('id', '=', r.id).execute();
        events.push({ type: 'message.bounced', ...base, data: { recipient: r.address, type: 'hard', reason, code: a.code, status: a.status, response: a.response, synchronous: true } });
      } else if (giveUp) {
        await trx.updateTable('outbound_recipients').set({ ...common, status: 'failed' }).where('id', '=', r.id).execute();
        events.push({ type: 'message.failed', ...base, data: { recipient: r.address, reason: 'lifetime_exceeded', last_response: a.response } });
      } else {
        deferred++;
        await trx.updateTable('outbound_recipients').set({ ...common, status: 'deferred' }).where('id', '=', r.id).execute();
        events.push({ type: 'message.deferred', ...base, data: { recipient: r.address, response: a.response, next_attempt_at: nextAt.toISOString() } });
      }
    }
    const ids = await appendEvents(trx, events, done);
    // A hard bounce suppresses the address everywhere (and cancels what is queued to it): the
    // mailbox does not exist or refuses us, and every later send would hurt the domain's reputation.
    for (const [i, e] of events.entries()) {
      if (e.type !== 'message.bounced') continue;
      await addSuppression(trx, { address: String(e.data!.recipient), scope: 'global', reason: 'hard_bounce', detail: String(e.data!.response).slice(0, 500), sourceEventId: ids[i] }, done);
    }
    if (deferred) {
      await trx.updateTable('outbound').set({ next_attempt_at: nextAt }).where('id', '=', o.id).execute();
      await boss.insert(QUEUES.send, [{ data: { message_id: o.id }, startAfter: nextAt, heartbeatSeconds: 10 }], { db: inTransaction(trx) });
    } else {
      await trx.updateTable('outbound').set({ next_attempt_at: null }).where('id', '=', o.id).execute();
    }
  });
}

export async function startSendWorker(deps: { store: Store; boss: PgBoss; transports: Transports; config: Config; log: Logger }): Promise<void> {
  if (deps.store.engine === 'pglite') await retryOrphanedJobs(deps.store, deps.boss, deps.log, QUEUES.send);
  await deps.boss.work<SendJob>(
    QUEUES.send,
    // Several messages in flight at once: a send is mostly waiting on a remote server.
    { batchSize: 1, localConcurrency: 8, pollingIntervalSeconds: 0.5 },
    async ([job]) => {
      await processSend(deps, job.data.message_id);
    },
  );
}
