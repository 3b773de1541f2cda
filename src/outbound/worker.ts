import { sql } from 'kysely';
import type { PgBoss } from 'pg-boss';
import type { Config } from '../config/config.ts';
import { appendEvents, type NewEvent } from '../events/events.ts';
import { QUEUES, retryOrphanedJobs } from '../jobs/boss.ts';
import type { Logger } from '../log.ts';
import type { Store } from '../store/database.ts';
import { addressKey } from './addresses.ts';
import { classifySmtpReply } from './bounces/classify.ts';
import type { Limits } from './limits.ts';
import { scheduleNextRun, scheduleRunAt } from './schedule.ts';
import { addSuppression, suppressedFor } from './suppressions.ts';
import { checkBounceRate } from './throttle.ts';
import type { Attempt, Transports } from './transports.ts';

/**
 * The send job: one outbound message → its transports, with every state change committed before
 * and after the network step (never during: PGlite has one connection).
 *
 *   1. recipients that are due are checked against the suppression list, then against the shared
 *      rate limits (limits.ts); what the budgets admit is marked `sending`, in one commit;
 *   2. the admitted recipients are handed to the transports;
 *   3. the outcomes are committed with their events: sent, bounced (5xx; a hard bounce — the address
 *      is dead — also suppresses it), deferred (4xx, network) with its next attempt time.
 * Each run ends by scheduling the next run at the earliest time a recipient is due again, in the
 * same commit. Exactly one job is live per message (`outbound.job_id`); any other is stale and exits,
 * so two runs never work on one message at once.
 *
 * The duplicate window: a crash between a remote `250` (step 2) and the commit of step 3 leaves the
 * recipient `sending`; the job is retried and the recipient is sent again — the same bytes, so the
 * same Message-ID, and at most one extra copy per message being sent at the crash (at most the
 * send concurrency, SEND_CONCURRENCY per process). Nothing is lost: a job whose worker died is retried (heartbeat
 * on PostgreSQL; embedded start-up fails it explicitly).
 */
export interface SendJob { message_id: string }

export interface SendDeps { store: Store; boss: PgBoss; transports: Transports; limits: Limits; config: Config; log: Logger }

const MAX_RETRY_DELAY_SECONDS = 3600;
/** Bounce reasons that mean the address itself is dead (sisimai's hard bounces): these are suppressed. */
export const HARD_REASONS: ReadonlySet<string> = new Set(['userunknown', 'hostunknown', 'hasmoved', 'notaccept']);
/** Jobs run this many at a time per process (a send is mostly waiting on a remote server): SEND_CONCURRENCY / SEND_BATCH workers fetching SEND_BATCH each. */
export const SEND_CONCURRENCY = 16;
const SEND_BATCH = 4;

/** Exponential backoff with ±25 % jitter, so a burst deferred together does not retry together. */
export function retryDelaySeconds(attempt: number, baseSeconds: number, random = Math.random): number {
  const exp = Math.min(baseSeconds * 2 ** Math.max(0, attempt - 1), MAX_RETRY_DELAY_SECONDS);
  return Math.max(1, Math.round(exp * (0.75 + random() * 0.5)));
}

export async function processSend(deps: SendDeps, messageId: string, jobId: string | null): Promise<void> {
  const { store, boss, transports, limits, config } = deps;
  const { db } = store;
  const o = await db.selectFrom('outbound').innerJoin('messages', 'messages.id', 'outbound.id').innerJoin('inboxes', 'inboxes.id', 'outbound.inbox_id')
    .leftJoin('domains', 'domains.name', 'inboxes.domain')
    .select(['outbound.id', 'outbound.inbox_id', 'outbound.envelope_from', 'outbound.raw_sha256', 'outbound.trace_id', 'outbound.expires_at', 'outbound.job_id',
      'messages.thread_id', 'inboxes.domain', 'domains.created_at as domain_created_at', 'domains.paused_at as domain_paused_at'])
    .where('outbound.id', '=', messageId).executeTakeFirst();
  if (!o) return;
  if (jobId && o.job_id !== jobId) return; // stale: another run is (or was made) the live one
  const now = new Date();
  const pending = await db.selectFrom('outbound_recipients').selectAll().where('message_id', '=', messageId).where('status', 'in', ['queued', 'deferred', 'sending']).orderBy('id').execute();
  if (!pending.length) return;
  const base = { inbox_id: o.inbox_id, message_id: o.id, thread_id: o.thread_id, trace_id: o.trace_id };

  if (now >= new Date(o.expires_at)) {
    await db.transaction().execute(async (trx) => {
      await trx.updateTable('outbound_recipients').set({ status: 'failed', response: sql`coalesce(response, '') || ' (gave up: the message lifetime ran out)'`, updated_at: now })
        .where('id', 'in', pending.map((r) => r.id)).execute();
      await appendEvents(trx, pending.map((r) => ({ type: 'message.failed' as const, ...base, data: { recipient: r.address, reason: 'lifetime_exceeded', last_response: r.response } })), now);
      await scheduleNextRun(trx, boss, o.id, now);
    });
    return;
  }

  // A paused domain (bounce rate) holds its mail; the run looks again later. A resume reschedules at once.
  if (o.domain_paused_at) {
    await db.transaction().execute((trx) => scheduleRunAt(trx, boss, o.id, new Date(now.getTime() + config.outbound.throttleRecheckSeconds * 1000)));
    return;
  }

  // 1. Due recipients ('sending' ones are due at once: a crash interrupted them), suppression, limits.
  const due = pending.filter((r) => r.status === 'sending' || !r.next_attempt_at || new Date(r.next_attempt_at) <= now);
  const suppressed = await suppressedFor(db, o.inbox_id, o.domain, due.map((r) => r.address));
  const admission = await db.transaction().execute(async (trx) => {
    const off = due.filter((r) => suppressed.has(addressKey(r.address)));
    if (off.length) {
      await trx.updateTable('outbound_recipients').set({ status: 'suppressed', updated_at: now }).where('id', 'in', off.map((r) => r.id)).execute();
      await appendEvents(trx, off.map((r) => ({ type: 'message.suppressed' as const, ...base, data: { recipient: r.address, reason: suppressed.get(addressKey(r.address)), cancelled: true } })), now);
    }
    const candidates = due.filter((r) => !suppressed.has(addressKey(r.address)));
    const { admitted, blocked, admittedAt } = await limits.admit(trx, { inboxId: o.inbox_id, domain: o.domain, domainCreatedAt: o.domain_created_at ? new Date(o.domain_created_at) : null },
      candidates.map((r) => ({ id: r.id, address: r.address })), o.id);
    for (const b of blocked) {
      await trx.updateTable('outbound_recipients').set({ next_attempt_at: b.at, updated_at: now }).where('id', '=', b.id).execute();
    }
    if (blocked.length) {
      await appendEvents(trx, blocked.map((b) => ({ type: 'message.deferred' as const, ...base, data: { recipient: b.address, reason: 'rate_limited', next_attempt_at: b.at.toISOString() } })), now);
    }
    // Only recipients still waiting go: one recalled or suppressed since `pending` was read (recall.ts,
    // addSuppression) keeps its status and is not sent.
    const taken = admitted.length
      ? new Set((await trx.updateTable('outbound_recipients').set((eb) => ({ status: 'sending', attempts: eb('attempts', '+', 1), updated_at: now }))
        .where('id', 'in', admitted.map((r) => r.id)).where('status', 'in', ['queued', 'deferred', 'sending']).returning('id').execute()).map((r) => r.id))
      : new Set<string>();
    if (taken.size) {
      await trx.updateTable('outbound').set((eb) => ({ attempts: eb('attempts', '+', 1) })).where('id', '=', o.id).execute();
    } else {
      await scheduleNextRun(trx, boss, o.id, now);
    }
    return { go: candidates.filter((r) => taken.has(r.id)), admittedAt };
  });
  const { go, admittedAt } = admission;
  if (!go.length) return;

  // 2. The network step.
  const raw = await store.blobs.get(o.raw_sha256);
  if (!raw) throw new Error(`raw message ${o.raw_sha256} of ${o.id} is missing from the blob store`);
  const attempts: Attempt[] = await transports.deliver({ envelopeFrom: o.envelope_from, recipients: go.map((r) => r.address), raw });
  const byAddress = new Map(attempts.map((a) => [addressKey(a.address), a]));

  // 3. Outcomes.
  const done = new Date();
  await db.transaction().execute(async (trx) => {
    const events: NewEvent[] = [];
    for (const r of go) {
      const a = byAddress.get(addressKey(r.address)) ?? { address: r.address, outcome: 'deferred' as const, code: null, status: null, response: 'no result from the transport', transport: transports.routeOf(r.address) };
      const common = { response: a.response, transport: a.transport, updated_at: done };
      const nextAt = new Date(done.getTime() + retryDelaySeconds(r.attempts + 1, config.outbound.retryBaseSeconds) * 1000);
      if (a.outcome === 'sent') {
        await trx.updateTable('outbound_recipients').set({ ...common, status: 'sent', sent_at: done, next_attempt_at: null }).where('id', '=', r.id).execute();
        events.push({ type: 'message.sent', ...base, data: { recipient: r.address, transport: a.transport, response: a.response } });
      } else if (a.outcome === 'bounced') {
        // A 5xx ends this message for this recipient. It is a hard bounce — the address is dead and is
        // suppressed — only when the reason says so; "rejected as spam" is about this message, not the address.
        const { reason } = classifySmtpReply(a.code ?? 550, a.status, a.response);
        const type = HARD_REASONS.has(reason) ? 'hard' : 'soft';
        await trx.updateTable('outbound_recipients').set({ ...common, status: 'bounced', bounce_type: type, bounce_reason: reason, next_attempt_at: null }).where('id', '=', r.id).execute();
        events.push({ type: 'message.bounced', ...base, data: { recipient: r.address, type, reason, code: a.code, status: a.status, response: a.response, synchronous: true } });
      } else if (nextAt >= new Date(o.expires_at)) {
        await trx.updateTable('outbound_recipients').set({ ...common, status: 'failed', next_attempt_at: null }).where('id', '=', r.id).execute();
        events.push({ type: 'message.failed', ...base, data: { recipient: r.address, reason: 'lifetime_exceeded', last_response: a.response } });
      } else {
        await trx.updateTable('outbound_recipients').set({ ...common, status: 'deferred', next_attempt_at: nextAt }).where('id', '=', r.id).execute();
        events.push({ type: 'message.deferred', ...base, data: { recipient: r.address, response: a.response, next_attempt_at: nextAt.toISOString() } });
      }
    }
    const ids = await appendEvents(trx, events, done);
    await limits.settle(trx, o.id, admittedAt, done);
    // A hard bounce suppresses the address everywhere (and cancels what is queued to it): the
    // mailbox does not exist or refuses us, and every later send would hurt the domain's reputation.
    for (const [i, e] of events.entries()) {
      if (e.type !== 'message.bounced' || e.data!.type !== 'hard') continue;
      await addSuppression(trx, { address: String(e.data!.recipient), scope: 'global', reason: 'hard_bounce', detail: String(e.data!.response).slice(0, 500), sourceEventId: ids[i] }, done);
    }
    if (events.some((e) => e.type === 'message.bounced')) await checkBounceRate(trx, o.domain, config.outbound.bounceRate, done);
    await scheduleNextRun(trx, boss, o.id, done);
  });
}

export async function startSendWorker(deps: SendDeps): Promise<void> {
  if (deps.store.engine === 'pglite') await retryOrphanedJobs(deps.store, deps.boss, deps.log, QUEUES.send);
  await deps.boss.work<SendJob>(
    QUEUES.send,
    {
      // SEND_BATCH jobs per fetch, run side by side, each with its own result (one failing job is
      // retried alone); with a full batch the worker fetches again at once instead of sleeping out
      // the polling interval, which capped sending at 16/s (bench/outbound.ts; pg-boss ignores
      // burstWhenBatchFull at batchSize 1).
      batchSize: SEND_BATCH, localConcurrency: SEND_CONCURRENCY / SEND_BATCH, pollingIntervalSeconds: 0.5,
      burstWhenBatchFull: true, perJobResults: true,
    },
    async (jobs) => Promise.all(jobs.map(async (job) => {
      try {
        await processSend(deps, job.data.message_id, job.id);
        return { id: job.id, status: 'completed' as const };
      } catch (err) {
        deps.log.warn({ err, message: job.data.message_id }, 'a send job failed; it is retried');
        return { id: job.id, status: 'failed' as const, output: { message: (err as Error).message } };
      }
    })),
  );
}
