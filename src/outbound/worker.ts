import { sql, type Kysely, type Selectable } from 'kysely';
import type { PgBoss } from 'pg-boss';
import type { Config } from '../config/config.ts';
import { appendEvents, type NewEvent } from '../events/events.ts';
import { QUEUES, retryOrphanedJobs } from '../jobs/boss.ts';
import type { Logger } from '../log.ts';
import type { Store } from '../store/database.ts';
import { addressKey } from './addresses.ts';
import { classifySmtpReply } from './bounces/classify.ts';
import type { Limits, SenderUnit } from './limits.ts';
import type { Database, OutboundRecipientTable, RecipientStatus } from '../store/schema.ts';
import { scheduleNextRuns, scheduleRunsAt } from './schedule.ts';
import { addSuppression, suppressedForSenders } from './suppressions.ts';
import { checkBounceRate } from './throttle.ts';
import type { Attempt, Transports } from './transports.ts';
import { GroupCommit } from '../store/group-commit.ts';

/**
 * The send jobs: outbound messages → their transports, with every state change committed before
 * and after the network step (never during: PGlite has one connection). The worker takes jobs in
 * batches (processSends) so that the database work is a few statements per batch, not per message:
 *
 *   1. recipients that are due are checked against the suppression list, then against the shared
 *      rate limits (limits.ts); what the budgets admit is marked `sending`, in one commit for the batch;
 *   2. the admitted recipients are handed to the transports, every message of the batch side by side;
 *   3. each message's outcomes are committed with their events as soon as its transport answered,
 *      grouped with the other outcomes waiting at that moment (store/group-commit.ts): sent,
 *      bounced (5xx; a hard bounce — the address is dead — also suppresses it), deferred (4xx,
 *      network) with its next attempt time.
 * Each message's run ends by scheduling its next run at the earliest time a recipient is due
 * again, in the same commit. Exactly one job is live per message (`outbound.job_id`); any other is
 * stale and exits, so two runs never work on one message at once.
 *
 * The duplicate window: a crash between a remote `250` (step 2) and the commit of step 3 leaves the
 * recipient `sending`; the job is retried and the recipient is sent again — the same bytes, so the
 * same Message-ID. The window is one outcome commit long (step 3 does not wait for the rest of the
 * batch), and at most the messages being sent at the crash can be in it: SEND_CONCURRENCY per
 * process. Nothing is lost: a job whose worker died is retried (heartbeat on PostgreSQL; embedded
 * start-up fails it explicitly).
 */
export interface SendJob { message_id: string }

export interface SendDeps {
  store: Store;
  boss: PgBoss;
  transports: Transports;
  limits: Limits;
  config: Config;
  log: Logger;
}

/** What a batch is worked with: the process's outcome group commit, shared by every batch (startSendWorker). */
type WorkerDeps = SendDeps & { outcomes: GroupCommit<Delivery, true> };

const MAX_RETRY_DELAY_SECONDS = 3600;
/** Bounce reasons that mean the address itself is dead (sisimai's hard bounces): these are suppressed. */
export const HARD_REASONS: ReadonlySet<string> = new Set(['userunknown', 'hostunknown', 'hasmoved', 'notaccept']);
/**
 * Jobs run this many at a time per process (a send is mostly waiting on a remote server): SEND_CONCURRENCY / SEND_BATCH
 * workers fetching SEND_BATCH each. Also the bound on duplicate copies per crash (above).
 */
export const SEND_CONCURRENCY = 32;
const SEND_BATCH = 16;

/** Exponential backoff with ±25 % jitter, so a burst deferred together does not retry together. */
export function retryDelaySeconds(attempt: number, baseSeconds: number, random = Math.random): number {
  const exp = Math.min(baseSeconds * 2 ** Math.max(0, attempt - 1), MAX_RETRY_DELAY_SECONDS);
  return Math.max(1, Math.round(exp * (0.75 + random() * 0.5)));
}

type Recipient = Selectable<OutboundRecipientTable>;
/** One message's network step, answered: what was tried, for whom, and the transports' answers. */
type Delivery = { go: Recipient[]; base: EventBase; domain: string; expiresAt: Date; admittedAt: Date; attempts: Attempt[] };
type EventBase = { inbox_id: string; message_id: string; thread_id: string; trace_id: string };

/** One send job's message (a batch of them is worked through together: processSends). */
export interface SendJobRef { messageId: string; jobId: string | null }

/**
 * Works a batch of send jobs with a constant number of statements per step, whatever the batch
 * size: one read of the messages, one of their recipients, one suppression lookup, one admission
 * transaction, the network step for every message side by side, and outcome commits shared with
 * whatever other outcomes are waiting (deps.outcomes). At
 * hundreds of sends a second the database round trips per message, not the rows, were the cost
 * (bench/README.md "Outbound"). Returns the messages whose network step threw (their recipients
 * stay `sending`; the job is failed and retried, and a `sending` recipient is due at once).
 */
export async function processSends(deps: WorkerDeps, jobs: SendJobRef[]): Promise<Map<string, Error>> {
  const { store, boss, transports, limits, config } = deps;
  const { db } = store;
  const failed = new Map<string, Error>();
  const rows = await db.selectFrom('outbound').innerJoin('messages', 'messages.id', 'outbound.id').innerJoin('inboxes', 'inboxes.id', 'outbound.inbox_id')
    .leftJoin('domains', 'domains.name', 'inboxes.domain')
    .select(['outbound.id', 'outbound.inbox_id', 'outbound.envelope_from', 'outbound.raw_sha256', 'outbound.trace_id', 'outbound.expires_at', 'outbound.job_id',
      'messages.thread_id', 'inboxes.domain', 'domains.created_at as domain_created_at', 'domains.paused_at as domain_paused_at'])
    .where('outbound.id', 'in', [...new Set(jobs.map((j) => j.messageId))]).execute();
  // Stale jobs exit: another run is (or was made) the live one.
  const asked = new Set(jobs.map((j) => `${j.messageId}\n${j.jobId}`));
  const live = rows.filter((o) => asked.has(`${o.id}\nnull`) || asked.has(`${o.id}\n${o.job_id}`));
  if (!live.length) return failed;
  const now = new Date();
  const pendingRows = await db.selectFrom('outbound_recipients').selectAll().where('message_id', 'in', live.map((o) => o.id))
    .where('status', 'in', ['queued', 'deferred', 'sending']).orderBy('id').execute();
  const pendingOf = Map.groupBy(pendingRows, (r) => r.message_id);
  const work = live.filter((o) => pendingOf.has(o.id)).map((o) => ({
    o, pending: pendingOf.get(o.id)!,
    base: { inbox_id: o.inbox_id, message_id: o.id, thread_id: o.thread_id, trace_id: o.trace_id } as EventBase,
    sender: { inboxId: o.inbox_id, domain: o.domain, domainCreatedAt: o.domain_created_at ? new Date(o.domain_created_at) : null },
  }));
  const expired = work.filter((w) => now >= new Date(w.o.expires_at));
  // A paused domain (bounce rate) holds its mail; the run looks again later. A resume reschedules at once.
  const paused = work.filter((w) => !expired.includes(w) && w.o.domain_paused_at);
  const active = work.filter((w) => !expired.includes(w) && !paused.includes(w));
  if (expired.length || paused.length) {
    await db.transaction().execute(async (trx) => {
      const gone = expired.flatMap((w) => w.pending.map((r) => ({ w, r })));
      if (gone.length) {
        await trx.updateTable('outbound_recipients').set({ status: 'failed', response: sql`coalesce(response, '') || ' (gave up: the message lifetime ran out)'`, updated_at: now })
          .where('id', 'in', gone.map(({ r }) => r.id)).execute();
        await appendEvents(trx, gone.map(({ w, r }) => ({ type: 'message.failed' as const, ...w.base, data: { recipient: r.address, reason: 'lifetime_exceeded', last_response: r.response } })), now);
        await scheduleNextRuns(trx, boss, expired.map((w) => w.o.id), now);
      }
      const recheck = new Date(now.getTime() + config.outbound.throttleRecheckSeconds * 1000);
      await scheduleRunsAt(trx, boss, paused.map((w) => ({ messageId: w.o.id, at: recheck })));
    });
  }
  if (!active.length) return failed;

  // 1. Due recipients ('sending' ones are due at once: a crash interrupted them), suppression, limits.
  const dueOf = active.map((w) => w.pending.filter((r) => r.status === 'sending' || !r.next_attempt_at || new Date(r.next_attempt_at) <= now));
  const suppressed = await suppressedForSenders(db, active.map((w, i) => ({ inboxId: w.o.inbox_id, domain: w.o.domain, addresses: dueOf[i].map((r) => r.address) })));
  const admission = await db.transaction().execute(async (trx) => {
    const off: { w: (typeof active)[number]; r: Recipient; why: string }[] = [];
    const units: (SenderUnit & { r: Recipient; w: (typeof active)[number] })[] = [];
    active.forEach((w, i) => {
      for (const r of dueOf[i]) {
        const why = suppressed[i].get(addressKey(r.address));
        if (why) off.push({ w, r, why });
        else units.push({ id: r.id, address: r.address, sender: w.sender, messageId: w.o.id, r, w });
      }
    });
    if (off.length) await trx.updateTable('outbound_recipients').set({ status: 'suppressed', updated_at: now }).where('id', 'in', off.map(({ r }) => r.id)).execute();
    // A recipient still `sending` was left by a worker that died or threw: its attempt ended now.
    await limits.restart(trx, [...new Set(dueOf.flatMap((due, i) => (due.some((r) => r.status === 'sending') ? [active[i].o.id] : [])))]);
    const { admitted, blocked, admittedAt } = await limits.admit(trx, units);
    for (const b of blocked) {
      await trx.updateTable('outbound_recipients').set({ next_attempt_at: b.at, updated_at: now }).where('id', '=', b.id).execute();
    }
    await appendEvents(trx, [
      ...off.map(({ w, r, why }) => ({ type: 'message.suppressed' as const, ...w.base, data: { recipient: r.address, reason: why, cancelled: true } })),
      ...blocked.map((b) => ({ type: 'message.deferred' as const, ...b.w.base, data: { recipient: b.address, reason: 'rate_limited', next_attempt_at: b.at.toISOString() } })),
    ], now);
    // Only recipients still waiting go: one recalled or suppressed since `pending` was read (recall.ts,
    // addSuppression) keeps its status and is not sent. The messages that have one going count an
    // attempt, in the same statement (a data-modifying CTE reading the first one's RETURNING rows).
    const taken = admitted.length
      ? new Set((await trx
        .with('taken', (db) => db.updateTable('outbound_recipients').set((eb) => ({ status: 'sending', attempts: eb('attempts', '+', 1), updated_at: now }))
          .where('id', 'in', admitted.map((u) => u.id)).where('status', 'in', ['queued', 'deferred', 'sending']).returning(['id', 'message_id']))
        .with('attempted', (db) => db.updateTable('outbound').set((eb) => ({ attempts: eb('attempts', '+', 1) }))
          .where('id', 'in', (eb) => eb.selectFrom('taken').select('message_id')))
        .selectFrom('taken').select('id').execute()).map((r) => r.id))
      : new Set<string>();
    const go = Map.groupBy(admitted.filter((u) => taken.has(u.id)), (u) => u.w);
    // A message admitted but recalled or suppressed meanwhile sends nothing: its slots count from now, not as in flight.
    await limits.settle(trx, [...new Set(admitted.filter((u) => !go.has(u.w)).map((u) => u.w.o.id))], admittedAt);
    // A message with nothing to send now waits for its next due recipient.
    await scheduleNextRuns(trx, boss, active.filter((w) => !go.has(w)).map((w) => w.o.id), now);
    return { go, admittedAt };
  });
  if (!admission.go.size) return failed;

  // 2. The network step, every message of the batch side by side (the transports pool connections);
  // 3. each message's outcome is committed as soon as it is known, together with whatever other
  // outcomes are waiting (a group commit), not when the whole batch is done: a message the remote
  // server took is recorded as sent within one commit, whatever its batch-mates are waiting for,
  // which keeps the window for a duplicate after a crash as short as one send.
  const entries = [...admission.go];
  // A table store reads the batch's raw messages in one statement; files are read one by one.
  const raws = await store.blobs.getMany?.(entries.map(([w]) => w.o.raw_sha256));
  const settled = await Promise.allSettled(entries.map(async ([w, units]) => {
    const raw = raws?.get(w.o.raw_sha256) ?? await store.blobs.get(w.o.raw_sha256);
    if (!raw) throw new Error(`raw message ${w.o.raw_sha256} of ${w.o.id} is missing from the blob store`);
    const go = units.map((u) => u.r);
    const attempts = await transports.deliver({ envelopeFrom: w.o.envelope_from, recipients: go.map((r) => r.address), raw });
    await deps.outcomes.submit({ go, base: w.base, domain: w.o.domain, expiresAt: new Date(w.o.expires_at), admittedAt: admission.admittedAt, attempts });
  }));
  settled.forEach((s, i) => {
    if (s.status === 'rejected') failed.set(entries[i][0].o.id, s.reason instanceof Error ? s.reason : new Error(String(s.reason)));
  });
  return failed;
}

/** The outcomes of a group of messages' network steps, in one commit. */
async function writeOutcomes(deps: SendDeps, deliveries: Delivery[]): Promise<true[]> {
  const { store: { db }, boss, transports, limits, config } = deps;
  const done = new Date();
  await db.transaction().execute(async (trx) => {
    const events: NewEvent[] = [];
    const updates: OutcomeRow[] = [];
    const bouncedDomains = new Set<string>();
    for (const { go, base, domain, expiresAt, attempts } of deliveries) {
      const byAddress = new Map(attempts.map((a) => [addressKey(a.address), a]));
      for (const r of go) {
        const a = byAddress.get(addressKey(r.address)) ?? { address: r.address, outcome: 'deferred' as const, code: null, status: null, response: 'no result from the transport', transport: transports.routeOf(r.address) };
        const common = { id: r.id, response: a.response, transport: a.transport, sent_at: null, next_attempt_at: null, bounce_type: null, bounce_reason: null };
        const nextAt = new Date(done.getTime() + retryDelaySeconds(r.attempts + 1, config.outbound.retryBaseSeconds) * 1000);
        if (a.outcome === 'sent') {
          updates.push({ ...common, status: 'sent', sent_at: done });
          events.push({ type: 'message.sent', ...base, data: { recipient: r.address, transport: a.transport, response: a.response } });
        } else if (a.outcome === 'bounced') {
          // A 5xx ends this message for this recipient. It is a hard bounce — the address is dead and is
          // suppressed — only when the reason says so; "rejected as spam" is about this message, not the address.
          const { reason } = classifySmtpReply(a.code ?? 550, a.status, a.response);
          const type = HARD_REASONS.has(reason) ? 'hard' : 'soft';
          updates.push({ ...common, status: 'bounced', bounce_type: type, bounce_reason: reason });
          events.push({ type: 'message.bounced', ...base, data: { recipient: r.address, type, reason, code: a.code, status: a.status, response: a.response, synchronous: true } });
          bouncedDomains.add(domain);
        } else if (nextAt >= expiresAt) {
          updates.push({ ...common, status: 'failed' });
          events.push({ type: 'message.failed', ...base, data: { recipient: r.address, reason: 'lifetime_exceeded', last_response: a.response, ...risk(a) } });
        } else {
          updates.push({ ...common, status: 'deferred', next_attempt_at: nextAt });
          events.push({ type: 'message.deferred', ...base, data: { recipient: r.address, response: a.response, next_attempt_at: nextAt.toISOString(), ...risk(a) } });
        }
      }
    }
    await applyOutcomes(trx, updates, done);
    const ids = await appendEvents(trx, events, done);
    for (const [admittedAt, group] of Map.groupBy(deliveries, (d) => d.admittedAt.getTime())) {
      await limits.settle(trx, group.map((d) => d.base.message_id), new Date(admittedAt));
    }
    // A hard bounce suppresses the address everywhere (and cancels what is queued to it): the
    // mailbox does not exist or refuses us, and every later send would hurt the domain's reputation.
    for (const [i, e] of events.entries()) {
      if (e.type !== 'message.bounced' || e.data!.type !== 'hard') continue;
      await addSuppression(trx, { address: String(e.data!.recipient), scope: 'global', reason: 'hard_bounce', detail: String(e.data!.response).slice(0, 500), sourceEventId: ids[i] }, done);
    }
    for (const domain of bouncedDomains) await checkBounceRate(trx, domain, config.outbound.bounceRate, done);
    await scheduleNextRuns(trx, boss, deliveries.map((d) => d.base.message_id), done);
  });
  return deliveries.map(() => true as const);
}

/** An attempt whose outcome is unknown (transports.ts `uncertain`) says so on its event: the retry may make a second copy. */
const risk = (a: Attempt) => (a.uncertain ? { duplicate_risk: true } : {});

interface OutcomeRow {
  id: string;
  status: RecipientStatus;
  response: string | null;
  transport: string | null;
  sent_at: Date | null;
  next_attempt_at: Date | null;
  bounce_type: string | null;
  bounce_reason: string | null;
}

/** Every recipient's outcome in one statement: the rows as one JSON parameter (as store/bulk.ts inserts them). */
async function applyOutcomes(trx: Kysely<Database>, rows: OutcomeRow[], at: Date): Promise<void> {
  if (!rows.length) return;
  await sql`UPDATE outbound_recipients AS r SET
      status = v.status, response = v.response, transport = v.transport, updated_at = ${at},
      sent_at = coalesce(v.sent_at, r.sent_at), next_attempt_at = v.next_attempt_at,
      bounce_type = coalesce(v.bounce_type, r.bounce_type), bounce_reason = coalesce(v.bounce_reason, r.bounce_reason)
    FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb)
      AS v(id text, status text, response text, transport text, sent_at timestamptz, next_attempt_at timestamptz, bounce_type text, bounce_reason text)
    WHERE r.id = v.id`.execute(trx);
}

export async function startSendWorker(sendDeps: SendDeps): Promise<void> {
  // Outcomes of every batch of this process share group commits, one at a time (as the send API's, outbox.ts).
  const deps: WorkerDeps = {
    ...sendDeps,
    outcomes: new GroupCommit((group) => writeOutcomes(sendDeps, group), { maxGroup: SEND_CONCURRENCY, maxInflight: 1 }),
  };
  if (deps.store.engine === 'pglite') await retryOrphanedJobs(deps.store, deps.boss, deps.log, QUEUES.send);
  await deps.boss.work<SendJob>(
    QUEUES.send,
    {
      // SEND_BATCH jobs per fetch, worked together (processSends: a few statements per batch instead
      // of some twenty per message), each with its own result; with a full batch the worker fetches
      // again at once instead of sleeping out the polling interval (which capped sending at 16/s).
      batchSize: SEND_BATCH, localConcurrency: SEND_CONCURRENCY / SEND_BATCH, pollingIntervalSeconds: 0.5,
      burstWhenBatchFull: true, perJobResults: true,
    },
    async (jobs) => {
      const refs = jobs.map((job) => ({ messageId: job.data.message_id, jobId: job.id }));
      let failed: Map<string, Error>;
      try {
        failed = await processSends(deps, refs);
      } catch (err) {
        // One bad message must not hold back the others: the batch is worked again one job at a
        // time, so only the job that fails is failed (and retried by pg-boss).
        deps.log.warn({ err, jobs: jobs.length }, 'a batch of send jobs failed; working them one at a time');
        failed = new Map();
        for (const ref of refs) {
          try {
            for (const [id, e] of await processSends(deps, [ref])) failed.set(id, e);
          } catch (e) {
            failed.set(ref.messageId, e as Error);
          }
        }
      }
      return jobs.map((job) => {
        const err = failed.get(job.data.message_id);
        if (!err) return { id: job.id, status: 'completed' as const };
        deps.log.warn({ err, message: job.data.message_id }, 'a send job failed; it is retried');
        return { id: job.id, status: 'failed' as const, output: { message: err.message } };
      });
    },
  );
}
