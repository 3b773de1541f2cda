import { sql, type Kysely, type Updateable } from 'kysely';
import { randomUUID } from 'node:crypto';
import type { PgBoss } from 'pg-boss';
import { appendEvents, type NewEvent } from '../events/events.ts';
import { newId } from '../ids.ts';
import { inTransaction } from '../jobs/boss.ts';
import type { Database } from '../store/schema.ts';
import type { HistoryMessage, HistoryThread } from './roles.ts';
import { queueFor, type Pattern } from './patterns.ts';
import { orchestratorDb, type Db, type RunRow, type RunStatus, type RunTable, type SpanTable } from './tables.ts';

/**
 * Every SQL statement of the orchestrator, in one place (as pg-boss keeps its plans in one module):
 * run state changes with their optimistic check, cap reservations, the router's lookups, history
 * for the agents, the funnel and the trace.
 */

/** A run in one of these states may still act; the others are ends (or, for paused, wait for a resume). */
export const LIVE: RunStatus[] = ['pending', 'active', 'waiting'];
export const ENDED: RunStatus[] = ['done', 'needs_human', 'dead'];

/** Freemail domains are not companies: a reply from someone else at gmail.com says nothing about the lead. */
export const FREEMAIL = new Set([
  'gmail.com', 'googlemail.com', 'outlook.com', 'hotmail.com', 'live.com', 'msn.com', 'yahoo.com', 'ymail.com', 'aol.com',
  'icloud.com', 'me.com', 'mac.com', 'proton.me', 'protonmail.com', 'gmx.de', 'gmx.net', 'web.de', 'mail.com', 'yandex.ru',
  'mail.ru', 'qq.com', '163.com', 'zoho.com', 'fastmail.com', 'hey.com', 'tutanota.com',
]);

export type RunChanges = Omit<Updateable<RunTable>, 'id' | 'campaign_id' | 'lead_id' | 'trace_id' | 'created_at' | 'version'>;

export interface SpanInput {
  kind: SpanTable['kind'];
  name: string;
  status?: 'ok' | 'error';
  startedAt: Date;
  durationMs: number;
  simAt: Date;
  input?: unknown;
  output?: unknown;
  error?: string | null;
}

/** Thrown when a run changed since it was read (another job or process moved it): drop the work. */
export class StaleRun extends Error {
  constructor(runId: string) {
    super(`run ${runId} changed under this job`);
  }
}

/**
 * Job priorities (pg-boss fetches higher first): a wake-up (a reply, a bounce) before a run's own
 * next step or timer, and those before the first step of a run not started yet — so a follow-up
 * that comes due, or an answer to a reply, does not wait behind a large import's first steps.
 */
export const PRIORITY = { start: 0, step: 1, wake: 2 } as const;

/** A run's next job: `queue` is where its pattern puts the stage it will work (patterns.ts `queueFor`). */
export interface JobRequest { jobId: string; queue: string; startAfter?: Date; priority?: number }

export const newJob = (queue: string, startAfter?: Date): JobRequest => ({ jobId: randomUUID(), queue, startAfter });

/** Queues run jobs in the caller's transaction: they exist if and only if the state that needs them commits. */
export async function queueRunJobs(trx: Kysely<Database>, boss: PgBoss, jobs: { runId: string; jobId: string; queue: string; startAfter?: Date; priority?: number }[]): Promise<void> {
  const byQueue = new Map<string, typeof jobs>();
  for (const j of jobs) {
    const list = byQueue.get(j.queue);
    if (list) list.push(j);
    else byQueue.set(j.queue, [j]);
  }
  for (const [queue, list] of byQueue) {
    for (let i = 0; i < list.length; i += 1000) {
      await boss.insert(queue, list.slice(i, i + 1000).map((j) => ({
        id: j.jobId, data: { run_id: j.runId }, heartbeatSeconds: 30, priority: j.priority ?? PRIORITY.start,
        // pg-boss takes a Date or seconds; a time in the past simply means now.
        startAfter: j.startAfter && j.startAfter.getTime() > Date.now() ? j.startAfter : undefined,
      })), { db: inTransaction(trx) });
    }
  }
}

export interface CommitOptions {
  spans?: SpanInput[];
  events?: NewEvent[];
  /** Replace the run's job: the new one is queued in the same transaction. */
  job?: JobRequest | null;
  /** More writes in the same transaction, after the run row was updated. */
  also?: (trx: Db) => Promise<void>;
}

/**
 * The one way a run changes: the row is updated only if nobody moved it since `run` was read
 * (version and job unchanged), together with its spans, events and next job. A stale read throws
 * StaleRun and nothing is written.
 */
export async function commitRun(db: Kysely<Database>, boss: PgBoss, run: RunRow, changes: RunChanges, o: CommitOptions = {}): Promise<RunRow> {
  const odb = orchestratorDb(db);
  const now = new Date();
  return odb.transaction().execute(async (trx) => {
    const set: Record<string, unknown> = { ...changes, updated_at: now, version: run.version + 1 };
    if (o.job !== undefined) set.job_id = o.job ? o.job.jobId : null;
    for (const k of ['notes', 'draft'] as const) if (set[k] !== undefined && set[k] !== null) set[k] = JSON.stringify(set[k]);
    const updated = await trx.updateTable('campaign_runs').set(set as never)
      .where('id', '=', run.id).where('version', '=', run.version)
      .returningAll().executeTakeFirst();
    if (!updated) throw new StaleRun(run.id);
    if (o.spans?.length) await insertSpans(trx, run, o.spans);
    if (o.events?.length) await appendEvents(trx as unknown as Kysely<Database>, o.events, now);
    if (o.also) await o.also(trx);
    if (o.job) await queueRunJobs(trx as unknown as Kysely<Database>, boss, [{ runId: run.id, priority: PRIORITY.step, ...o.job }]);
    return updated;
  });
}

export async function insertSpans(trx: Db, run: Pick<RunRow, 'id' | 'trace_id'>, spans: SpanInput[]): Promise<void> {
  await trx.insertInto('campaign_spans').values(spans.map((s) => ({
    id: newId('spn'), run_id: run.id, trace_id: run.trace_id, kind: s.kind, name: s.name, status: s.status ?? 'ok',
    started_at: s.startedAt, duration_ms: Math.max(0, Math.round(s.durationMs)), sim_at: s.simAt,
    input: s.input === undefined ? null : JSON.stringify(s.input), output: s.output === undefined ? null : JSON.stringify(s.output),
    error: s.error ?? null,
  }))).execute();
}

export const getRun = (db: Kysely<Database>, id: string) => orchestratorDb(db).selectFrom('campaign_runs').selectAll().where('id', '=', id).executeTakeFirst();
export const getLead = (db: Kysely<Database>, id: string) => orchestratorDb(db).selectFrom('campaign_leads').selectAll().where('id', '=', id).executeTakeFirst();
export const getCampaign = (db: Kysely<Database>, id: string) => orchestratorDb(db).selectFrom('campaigns').selectAll().where('id', '=', id).executeTakeFirst();

// ---- the daily cap of each sender ----

/**
 * Takes one of `inboxId`'s `cap` sends for `day` and records the reservation for (run, step), in
 * one transaction: the count cannot pass the cap whatever the number of processes (the UPDATE's
 * row lock serialises them), and a reservation repeated for the same step fails on the primary
 * key instead of counting twice. Returns false when the cap is reached.
 */
export async function reserveSend(db: Kysely<Database>, r: { runId: string; step: number; campaignId: string; inboxId: string; day: string; cap: number; key: string; simAt: Date }): Promise<boolean> {
  return orchestratorDb(db).transaction().execute(async (trx) => {
    await trx.insertInto('campaign_sender_usage').values({ campaign_id: r.campaignId, inbox_id: r.inboxId, day: r.day, count: 0 })
      .onConflict((oc) => oc.columns(['campaign_id', 'inbox_id', 'day']).doNothing()).execute();
    const took = await trx.updateTable('campaign_sender_usage').set({ count: sql`count + 1` })
      .where('campaign_id', '=', r.campaignId).where('inbox_id', '=', r.inboxId).where('day', '=', r.day).where('count', '<', r.cap)
      .returning('count').executeTakeFirst();
    if (!took) return false;
    await trx.insertInto('campaign_sends').values({
      run_id: r.runId, step: r.step, campaign_id: r.campaignId, inbox_id: r.inboxId, day: r.day, status: 'reserved',
      message_id: null, idempotency_key: r.key, sim_at: r.simAt, created_at: new Date(),
    }).execute();
    return true;
  });
}

export const getSend = (db: Kysely<Database>, runId: string, step: number) =>
  orchestratorDb(db).selectFrom('campaign_sends').selectAll().where('run_id', '=', runId).where('step', '=', step).executeTakeFirst();

/** Sends of the campaign per sender inbox for a day: where the rotation puts the next first message. */
export async function usageFor(db: Kysely<Database>, campaignId: string, day: string): Promise<Map<string, number>> {
  const rows = await orchestratorDb(db).selectFrom('campaign_sender_usage').select(['inbox_id', 'count'])
    .where('campaign_id', '=', campaignId).where('day', '=', day).execute();
  return new Map(rows.map((r) => [r.inbox_id, r.count]));
}

// ---- what happened to a run's lead (observed before every step) ----

/** A bounced or permanently failed recipient of anything the run sent. */
export async function bounceOf(db: Kysely<Database>, runId: string): Promise<{ status: string; bounce_reason: string | null; response: string | null } | undefined> {
  return orchestratorDb(db).selectFrom('campaign_sends as s')
    .innerJoin('outbound_recipients as r', 'r.message_id', 's.message_id')
    .select(['r.status', 'r.bounce_reason', 'r.response'])
    .where('s.run_id', '=', runId).where('r.status', 'in', ['bounced', 'failed'])
    .limit(1).executeTakeFirst();
}

export interface ReplyCandidate {
  id: string;
  thread_id: string;
  from_address: string | null;
  disposition: string | null;
  received_at: Date;
}

/**
 * The oldest received message this run has not handled yet that concerns it: in its thread, from
 * the lead's address, or (when `companyDomain` is given) from anyone at the lead's company, into
 * the inbox the run sends from, since the run's first send.
 */
export async function nextReply(db: Kysely<Database>, run: RunRow, leadKey: string, companyDomain: string | null, since: Date): Promise<ReplyCandidate | undefined> {
  if (!run.inbox_id) return undefined;
  const odb = orchestratorDb(db);
  return odb.selectFrom('messages as m')
    .select(['m.id', 'm.thread_id', 'm.from_address', 'm.disposition', 'm.received_at'])
    .where('m.inbox_id', '=', run.inbox_id)
    .where('m.direction', '=', 'inbound')
    .where('m.received_at', '>=', since)
    .where((eb) => eb.or([
      ...(run.thread_id ? [eb('m.thread_id', '=', run.thread_id)] : []),
      eb(sql`lower(m.from_address)`, '=', leadKey),
      ...(companyDomain ? [eb(sql`lower(split_part(m.from_address, '@', 2))`, '=', companyDomain)] : []),
    ]))
    .where(({ not, exists, selectFrom }) => not(exists(
      selectFrom('campaign_replies as h').select('h.message_id').whereRef('h.message_id', '=', 'm.id').where('h.run_id', '=', run.id),
    )))
    .orderBy('m.received_at').orderBy('m.id')
    .limit(1).executeTakeFirst() as Promise<ReplyCandidate | undefined>;
}

/** When the run first handed a message to the outbox (real time): replies before it are not replies. */
export async function firstSendAt(db: Kysely<Database>, runId: string): Promise<Date | null> {
  const r = await orchestratorDb(db).selectFrom('campaign_sends').select('created_at').where('run_id', '=', runId).orderBy('step').limit(1).executeTakeFirst();
  return r ? new Date(r.created_at) : null;
}

/**
 * The steps a run sent, each with the real time it left the outbox (the remote server's answer),
 * or null while it is still in the outbox (queued, held by a rate limit, being sent).
 */
export async function sentSteps(db: Kysely<Database>, runId: string): Promise<{ step: number; sim_at: Date; message_id: string | null; delivered_at: Date | null; pending: boolean }[]> {
  const rows = await orchestratorDb(db).selectFrom('campaign_sends as s')
    .leftJoin('outbound_recipients as r', 'r.message_id', 's.message_id')
    .select(['s.step', 's.sim_at', 's.message_id'])
    .select(sql<Date | null>`max(coalesce(r.sent_at, CASE WHEN r.status IN ('bounced', 'failed', 'suppressed') THEN r.updated_at END))`.as('delivered_at'))
    .select(sql<boolean>`bool_or(r.status IN ('queued', 'deferred', 'sending'))`.as('pending'))
    .where('s.run_id', '=', runId).where('s.status', '=', 'sent')
    .groupBy(['s.step', 's.sim_at', 's.message_id']).orderBy('s.step').execute();
  return rows.map((r) => ({ step: r.step, sim_at: new Date(r.sim_at), message_id: r.message_id, delivered_at: r.delivered_at ? new Date(r.delivered_at) : null, pending: !!r.pending }));
}

// ---- history for the agents ----

const clip = (s: string | null, n: number) => (s ?? '').replace(/\r\n?/g, '\n').slice(0, n);

function historyMessage(m: { id: string; direction: 'inbound' | 'outbound'; from_address: string | null; to: unknown; subject: string | null; received_at: Date; text: string | null; extracted_text: string | null }): HistoryMessage {
  return {
    id: m.id, direction: m.direction, from: m.from_address,
    to: ((m.to ?? []) as { address: string }[]).map((a) => a.address),
    subject: m.subject, at: new Date(m.received_at).toISOString(),
    text: clip(m.direction === 'inbound' ? (m.extracted_text ?? m.text) : m.text, 2000),
  };
}

const HISTORY_COLUMNS = ['m.id', 'm.direction', 'm.from_address', 'm.to', 'm.subject', 'm.received_at', 'm.text', 'm.extracted_text', 'm.thread_id'] as const;

/** A thread's messages, oldest first (at most `limit`, the newest ones), held mail left out. */
export async function threadMessages(db: Kysely<Database>, threadId: string, limit = 20): Promise<HistoryMessage[]> {
  const rows = await orchestratorDb(db).selectFrom('messages as m').select(HISTORY_COLUMNS)
    .where('m.thread_id', '=', threadId)
    .where((eb) => eb.or([eb('m.disposition', 'is', null), eb('m.disposition', 'not in', ['quarantined', 'needs_human'])]))
    .orderBy('m.received_at', 'desc').limit(limit).execute();
  return rows.reverse().map(historyMessage);
}

/**
 * Past threads with an address and with its domain: threads holding mail from it, or sent to it.
 * `excludeThread`: the run's own thread. Newest first, at most `threads` each, `perThread` messages.
 */
export async function historyWith(db: Kysely<Database>, q: { address: string; domain: string | null; threads?: number; perThread?: number; excludeThread?: string | null }): Promise<{ with_address: HistoryThread[]; with_domain: HistoryThread[] }> {
  const odb = orchestratorDb(db);
  const limit = q.threads ?? 3;
  const threadIds = async (match: 'address' | 'domain', value: string): Promise<string[]> => {
    const fromCol = match === 'address' ? sql`lower(m.from_address)` : sql`lower(split_part(m.from_address, '@', 2))`;
    const received = await odb.selectFrom('messages as m').select(['m.thread_id']).select(sql<Date>`max(m.received_at)`.as('at'))
      .where(fromCol, '=', value).where('m.direction', '=', 'inbound')
      .where((eb) => eb.or([eb('m.disposition', 'is', null), eb('m.disposition', 'not in', ['quarantined', 'needs_human'])]))
      .groupBy('m.thread_id').orderBy('at', 'desc').limit(limit + 1).execute();
    const sent = await odb.selectFrom('outbound_recipients as r').innerJoin('messages as m', 'm.id', 'r.message_id')
      .select(['m.thread_id']).select(sql<Date>`max(m.received_at)`.as('at'))
      .where(match === 'address' ? sql`lower(r.address)` : sql`r.domain`, '=', value)
      .groupBy('m.thread_id').orderBy('at', 'desc').limit(limit + 1).execute();
    return [...received, ...sent].sort((a, b) => new Date(b.at).getTime() - new Date(a.at).getTime())
      .map((r) => r.thread_id).filter((t, i, all) => all.indexOf(t) === i && t !== q.excludeThread).slice(0, limit);
  };
  const load = async (ids: string[]): Promise<HistoryThread[]> => {
    if (!ids.length) return [];
    const threads = await odb.selectFrom('threads').select(['id', 'subject']).where('id', 'in', ids).execute();
    const subject = new Map(threads.map((t) => [t.id, t.subject]));
    return Promise.all(ids.map(async (id) => ({ thread_id: id, subject: subject.get(id) ?? null, messages: await threadMessages(db, id, q.perThread ?? 6) })));
  };
  const address = q.address.toLowerCase();
  const byAddress = await threadIds('address', address);
  const byDomain = q.domain ? (await threadIds('domain', q.domain)).filter((t) => !byAddress.includes(t)) : [];
  return { with_address: await load(byAddress), with_domain: await load(byDomain) };
}

// ---- the router's lookups: which runs an event concerns ----

export async function runsForEvents(db: Kysely<Database>, q: { outboundIds: string[]; threadIds: string[]; senders: { inboxId: string; address: string }[]; suppressed: string[] }): Promise<string[]> {
  const odb = orchestratorDb(db);
  const ids = new Set<string>();
  if (q.outboundIds.length) {
    for (const r of await odb.selectFrom('campaign_sends').select('run_id').where('message_id', 'in', q.outboundIds).execute()) ids.add(r.run_id);
  }
  if (q.threadIds.length) {
    for (const r of await odb.selectFrom('campaign_runs').select('id').where('thread_id', 'in', q.threadIds).where('status', 'in', LIVE).execute()) ids.add(r.id);
  }
  if (q.senders.length) {
    const keys = [...new Set(q.senders.map((s) => s.address.toLowerCase()))];
    const domains = [...new Set(keys.map((k) => k.slice(k.lastIndexOf('@') + 1)).filter((d) => !FREEMAIL.has(d)))];
    const inboxIds = [...new Set(q.senders.map((s) => s.inboxId))];
    const rows = await odb.selectFrom('campaign_runs as r').innerJoin('campaign_leads as l', 'l.id', 'r.lead_id')
      .select('r.id').where('r.status', 'in', LIVE).where('r.inbox_id', 'in', inboxIds)
      .where((eb) => eb.or([eb('l.email_key', 'in', keys), ...(domains.length ? [eb('l.domain', 'in', domains)] : [])]))
      .execute();
    for (const r of rows) ids.add(r.id);
  }
  if (q.suppressed.length) {
    const rows = await odb.selectFrom('campaign_runs as r').innerJoin('campaign_leads as l', 'l.id', 'r.lead_id')
      .select('r.id').where('r.status', 'in', LIVE).where('l.email_key', 'in', [...new Set(q.suppressed.map((a) => a.toLowerCase()))]).execute();
    for (const r of rows) ids.add(r.id);
  }
  return [...ids];
}

/**
 * Gives each of these runs a new job that starts now (replacing whatever timer it had: the old
 * job finds itself stale and exits), so the run looks at what happened within the second.
 * Runs not in a live state are left alone. Returns the runs woken.
 */
export async function wakeRuns(trx: Kysely<Database>, boss: PgBoss, runIds: string[], o: { waitingIn?: RunTable['stage'] } = {}): Promise<string[]> {
  if (!runIds.length) return [];
  const odb = orchestratorDb(trx);
  let q = odb.selectFrom('campaign_runs as r').innerJoin('campaigns as c', 'c.id', 'r.campaign_id')
    .select(['r.id', 'r.stage', sql<Pattern | null>`c.spec->>'pattern'`.as('pattern')]).where('r.id', 'in', runIds);
  q = o.waitingIn ? q.where('r.status', '=', 'waiting').where('r.stage', '=', o.waitingIn) : q.where('r.status', 'in', ['pending', 'active', 'waiting']);
  const rows = await q.execute();
  const jobs = rows.map((r) => ({ runId: r.id, jobId: randomUUID(), queue: queueFor(r.pattern ?? undefined, r.stage), priority: PRIORITY.wake }));
  for (const j of jobs) {
    await odb.updateTable('campaign_runs').set({ job_id: j.jobId, version: sql`version + 1`, updated_at: new Date() }).where('id', '=', j.runId).execute();
  }
  await queueRunJobs(trx, boss, jobs);
  return jobs.map((j) => j.runId);
}

// ---- reading campaigns: funnel, runs, trace ----

export interface Funnel {
  leads: number;
  /** Runs by status. */
  status: Record<string, number>;
  /** Runs that have not sent their first message yet. */
  queued: number;
  /** Messages handed to the outbox, per step (index 0 = first message), less those it cancelled. */
  sent_per_step: number[];
  /** Handed to the outbox, then cancelled there before they went (the address was suppressed meanwhile). */
  cancelled: number;
  replied: Record<string, number>;
  bounced: number;
  complained: number;
  unsubscribed: number;
  suppressed: number;
  /** Ended without a reply or a bounce: sequence finished (no_reply), max steps, stopped by a rule. */
  stopped: number;
  /** Dead-lettered: an agent kept failing. */
  failed: number;
  needs_human: number;
  /** Every run's outcome, for the runs that ended. */
  outcomes: Record<string, number>;
}

export async function funnel(db: Kysely<Database>, campaignId: string, stepCount: number): Promise<Funnel> {
  const odb = orchestratorDb(db);
  const byStatus = await odb.selectFrom('campaign_runs').select(['status']).select(sql<string>`count(*)`.as('n'))
    .where('campaign_id', '=', campaignId).groupBy('status').execute();
  const byOutcome = await odb.selectFrom('campaign_runs').select(['outcome']).select(sql<string>`count(*)`.as('n'))
    .where('campaign_id', '=', campaignId).where('outcome', 'is not', null).groupBy('outcome').execute();
  // A send the outbox cancelled before it went (its address was suppressed meanwhile) was not sent.
  const perStep = await odb.selectFrom('campaign_sends as s').select(['s.step']).select(sql<string>`count(DISTINCT s.run_id)`.as('n'))
    .where('s.campaign_id', '=', campaignId).where('s.status', '=', 'sent')
    .where(({ not, exists, selectFrom }) => not(exists(selectFrom('outbound_recipients as r').select('r.id').whereRef('r.message_id', '=', 's.message_id').where('r.status', '=', 'suppressed'))))
    .groupBy('s.step').execute();
  const cancelled = await odb.selectFrom('campaign_sends as s').innerJoin('outbound_recipients as r', 'r.message_id', 's.message_id')
    .select(sql<string>`count(DISTINCT s.message_id)`.as('n'))
    .where('s.campaign_id', '=', campaignId).where('r.status', '=', 'suppressed').executeTakeFirst();
  const replies = await odb.selectFrom('campaign_replies').select(['classification']).select(sql<string>`count(*)`.as('n'))
    .where('campaign_id', '=', campaignId).where('classification', 'is not', null).groupBy('classification').execute();
  const notSent = await odb.selectFrom('campaign_runs as r').select(sql<string>`count(*)`.as('n'))
    .where('r.campaign_id', '=', campaignId).where('r.status', 'in', LIVE)
    .where(({ not, exists, selectFrom }) => not(exists(selectFrom('campaign_sends as s').select('s.run_id').whereRef('s.run_id', '=', 'r.id').where('s.status', '=', 'sent'))))
    .executeTakeFirst();
  const status = Object.fromEntries(byStatus.map((r) => [r.status, Number(r.n)]));
  const outcomes = Object.fromEntries(byOutcome.map((r) => [r.outcome!, Number(r.n)]));
  const sent = Array.from({ length: stepCount }, () => 0);
  for (const r of perStep) sent[r.step] = Number(r.n);
  const o = (k: string) => outcomes[k] ?? 0;
  return {
    leads: Object.values(status).reduce((a, b) => a + b, 0),
    status,
    queued: Number(notSent?.n ?? 0),
    sent_per_step: sent,
    cancelled: Number(cancelled?.n ?? 0),
    replied: Object.fromEntries(replies.map((r) => [r.classification!, Number(r.n)])),
    bounced: o('bounced'),
    complained: o('complained'),
    unsubscribed: o('unsubscribed'),
    suppressed: o('suppressed'),
    stopped: o('no_reply') + o('max_steps') + o('stopped') + o('company_replied') + o('auto_reply'),
    failed: status.dead ?? 0,
    needs_human: status.needs_human ?? 0,
    outcomes,
  };
}

export async function spansOf(db: Kysely<Database>, runId: string) {
  return orchestratorDb(db).selectFrom('campaign_spans').selectAll().where('run_id', '=', runId).orderBy('started_at').orderBy('id').execute();
}

export async function eventsOfTrace(db: Kysely<Database>, traceId: string) {
  return orchestratorDb(db).selectFrom('events').select(['id', 'type', 'created_at', 'inbox_id', 'message_id', 'thread_id', 'data'])
    .where('trace_id', '=', traceId).orderBy('created_at').orderBy('id').limit(1000).execute();
}

export { newId };

// ---- the hybrid pattern's watcher (watcher.ts) ----

/**
 * Runs of hybrid campaigns whose current job is active in a role queue and started longer ago
 * than the campaign's `checkpoints.stage_seconds`: the worker that took it died, or hangs. pg-boss's
 * job table is read directly (its schema given): the run is found by the job's own data, a
 * primary-key lookup, and only if the job is still the one the run names.
 */
export async function stuckRuns(db: Kysely<Database>, bossSchema: string, queues: string[]): Promise<{ id: string; campaign_id: string; trace_id: string; inbox_id: string | null; stage: string; seconds: number }[]> {
  const { rows } = await sql<{ id: string; campaign_id: string; trace_id: string; inbox_id: string | null; stage: string; seconds: number }>`
    SELECT r.id, r.campaign_id, r.trace_id, r.inbox_id, r.stage, extract(epoch FROM now() - j.started_on)::float8 AS seconds
    FROM ${sql.table(`${bossSchema}.job`)} j
    JOIN campaign_runs r ON r.id = j.data->>'run_id' AND r.job_id = j.id::text
    JOIN campaigns c ON c.id = r.campaign_id
    WHERE j.name IN (${sql.join(queues)}) AND j.state = 'active'
      AND c.status = 'running' AND coalesce(c.spec->>'pattern', 'hybrid') = 'hybrid'
      AND j.started_on < now() - make_interval(secs => coalesce((c.spec->'checkpoints'->>'stage_seconds')::float8, 120))
    LIMIT 500`.execute(db);
  return rows.map((r) => ({ ...r, seconds: Number(r.seconds) }));
}

/**
 * Running hybrid campaigns whose agent calls failed more than `checkpoints.failure_rate` of the
 * time over the last `windowSeconds`, once at least `checkpoints.min_calls` were made. The window
 * starts no earlier than the campaign's last change (`updated_at`: a resume), so the failures that
 * paused it do not pause it again the moment someone resumes it after fixing the cause.
 */
export async function failingCampaigns(db: Kysely<Database>, windowSeconds: number): Promise<{ campaign_id: string; calls: number; failed: number }[]> {
  const { rows } = await sql<{ campaign_id: string; calls: number; failed: number }>`
    SELECT r.campaign_id, count(*)::int AS calls, (count(*) FILTER (WHERE s.status = 'error'))::int AS failed
    FROM campaigns c
    JOIN campaign_runs r ON r.campaign_id = c.id
    JOIN campaign_spans s ON s.run_id = r.id AND s.kind = 'agent' AND s.started_at > greatest(now() - make_interval(secs => ${windowSeconds}), c.updated_at)
    WHERE c.status = 'running' AND coalesce(c.spec->>'pattern', 'hybrid') = 'hybrid'
    GROUP BY r.campaign_id, c.spec
    HAVING count(*) >= coalesce((c.spec->'checkpoints'->>'min_calls')::int, 20)
       AND (count(*) FILTER (WHERE s.status = 'error'))::float8 / count(*) > coalesce((c.spec->'checkpoints'->>'failure_rate')::float8, 0.5)`.execute(db);
  return rows;
}

/** Pauses a running campaign with its event (the watcher's intervention); false if it was not running. */
export async function pauseCampaign(trx: Kysely<Database>, id: string, data: Record<string, unknown>): Promise<boolean> {
  const row = await orchestratorDb(trx).updateTable('campaigns').set({ status: 'paused', updated_at: new Date() })
    .where('id', '=', id).where('status', '=', 'running').returning(['senders']).executeTakeFirst();
  if (!row) return false;
  await appendEvents(trx, [{ type: 'campaign.paused', inbox_id: (row.senders as { inbox_id: string }[])[0]?.inbox_id, data: { campaign_id: id, by: 'watcher', ...data } }]);
  return true;
}
