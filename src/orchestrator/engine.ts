import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import type { Kysely } from 'kysely';
import type { PgBoss } from 'pg-boss';
import type { Principal } from '../auth/scopes.ts';
import { cancelRunDrafts, draftForStep, insertDraft, markDraftSentIn } from '../drafts/store.ts';
import type { DraftRow } from '../drafts/tables.ts';
import { MailroomError } from '../errors.ts';
import { newId } from '../ids.ts';
import type { NewEvent } from '../events/events.ts';
import { agentView } from '../intel/agent-view.ts';
import { HELD } from '../intel/policy.ts';
import { QUEUES } from '../jobs/boss.ts';
import type { Logger } from '../log.ts';
import type { Messages } from '../messages/messages.ts';
import { domainOf } from '../outbound/addresses.ts';
import type { Outbox } from '../outbound/outbox.ts';
import { recallMessages } from '../outbound/recall.ts';
import { addSuppression, suppressedFor, type Reason } from '../outbound/suppressions.ts';
import type { Database } from '../store/schema.ts';
import { resolveAgents } from './agents/index.ts';
import { addBusinessDays, clockNow, isInWindow, localParts, realAt, startOfLocalDate, windowSlot, type CampaignClock } from './calendar.ts';
import { AgentFailure, callRole } from './call.ts';
import type { LlmServerSettings } from './llm/settings.ts';
import type { AgentRegistry, AgentSet, HistoryMessage, ModelUsage, ResponseDecision } from './roles.ts';
import { DEFAULT_RESPONSES, type CampaignSpec, type Lead, type ResponseActionType } from './spec.ts';
import {
  bounceOf, commitRun, firstSendAt, FREEMAIL, getCampaign, getLead, getRun, getSend, historyWith, newJob, nextReply,
  reserveSend, sentSteps, StaleRun, threadMessages, usageFor, wakeRuns, type CommitOptions, type JobRequest, type ReplyCandidate, type RunChanges, type SpanInput,
} from './store.ts';
import { type CampaignRow, type LeadRow, type RunRow, type RunStage, type SenderRef } from './tables.ts';
import { DecisionBudget, ORCHESTRATOR_QUEUE, queueFor, ROLE_QUEUES, ROLES, roleOf, type Role } from './patterns.ts';
import { renderTemplate } from './template.ts';

/**
 * The campaign engine: advances each lead's run, a state machine persisted in `campaign_runs`,
 * one durable job at a time.
 *
 *   research → personalize(step) → sequence(step) → [timer: send_at] → send(step) → personalize(step+1) …
 *                                                                     → await_reply → done (no_reply)
 *
 * Nothing waits in memory. A run that has to wait (the next step's send time, the end of the reply
 * window, an agent's retry backoff) commits a pg-boss job with `startAfter` in the same transaction
 * as its state, and `job_id` names the one job allowed to act on it: a job that finds another name
 * there is stale and exits, which is how a wake-up (router.ts: a reply, a bounce, a suppression)
 * replaces a timer. Before every step the run looks at what happened to its lead in the store
 * (bounces, suppressions, replies not yet handled), so a follow-up is checked against the stop
 * conditions at the moment it would be sent, not only when it was scheduled.
 *
 * Effects happen once: every change is committed with an optimistic check (store.commitRun), a send
 * carries an idempotency key derived from (campaign, lead, step) and is recorded per (run, step),
 * a handled reply per (run, message). A job repeated after a crash, or run by a second process,
 * finds the effect already there. An agent call is never inside a transaction (PGlite has one
 * connection; a model can take seconds).
 */

export interface EngineOptions {
  /** Longest an agent call may take before it counts as a failure. */
  agentTimeoutMs: number;
  /** Failed agent calls in a row before the run is dead-lettered. */
  maxAttempts: number;
  /** First retry delay after an agent failure (doubles each time, with jitter; real time). */
  retryBaseMs: number;
  /** Jobs one worker fetches per poll. */
  batchSize: number;
  /**
   * Workers of this process, each fetching its own batches: runs in flight = workers × batchSize.
   * Several small batches rather than one big one, so one slow agent call (up to its timeout)
   * holds back only the runs of its own batch (measured: bench/README.md, Campaigns).
   */
  workers: number;
  /** The centralized pattern's orchestrator: decisions per second of this process's loop (K). */
  decisionsPerSecond: number;
  /** How often the hybrid pattern's watcher looks at its checkpoints. */
  watchIntervalMs: number;
}

export const DEFAULT_ENGINE_OPTIONS: EngineOptions = { agentTimeoutMs: 60_000, maxAttempts: 5, retryBaseMs: 2_000, batchSize: 4, workers: 4, decisionsPerSecond: 100, watchIntervalMs: 2_000 };

/** Who works a job: a role's worker, the centralized orchestrator, or (jobs queued before patterns) anyone. */
type Worker = Role | 'orchestrator' | null;

export interface EngineDeps {
  db: Kysely<Database>;
  boss: PgBoss;
  outbox: Outbox;
  messages: Messages;
  registry?: AgentRegistry;
  /** The server's model for roles set to "llm" (config.llm), under each campaign's llm block. */
  llm?: LlmServerSettings;
  log: Logger;
  options?: Partial<EngineOptions>;
  /** Told when a run of a campaign ended (the campaign may be complete now). */
  onRunEnded?: (campaignId: string) => void;
  /**
   * Whether mail to the inbox was acknowledged but is not readable yet (server.ts: the acceptor's
   * memory and the receipts not yet parsed). Without it, nothing is waited for.
   */
  unreadInbound?: (inboxId: string) => Promise<boolean>;
}

/** How soon a run held back by unread inbound mail looks again (real time). */
const UNREAD_RECHECK_MS = 2_000;

/** A campaign as the engine uses it, cached briefly (its status is re-read at most every 2 s). */
interface LiveCampaign {
  row: CampaignRow;
  spec: CampaignSpec;
  clock: CampaignClock;
  senders: SenderRef[];
  agents: AgentSet;
  principal: Principal;
  responses: Record<string, ResponseActionType>;
  fetchedAt: number;
}

interface Ctx {
  run: RunRow;
  lead: LeadRow;
  data: Lead;
  c: LiveCampaign;
  /** Campaign-clock time now. */
  now: Date;
}

type Next = 'continue' | 'yield';

const CACHE_MS = 2_000;
/**
 * A run waiting for its last message to leave the outbox is woken by message.sent (or bounced,
 * failed); this is only the fallback (a domain paused by its bounce rate holds mail for long).
 */
const DELIVERY_RECHECK_MS = 60_000;
/** Which process made a call, on its trace: with several orchestrator processes, an operator can tell. */
const WORKER = `${hostname()}:${process.pid}`;
const MAX_HOPS = 16;

const iso = (d: Date) => d.toISOString();
const nextDate = (date: string) => new Date(Date.parse(`${date}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10);

/**
 * Run outcomes after which a step still waiting in the outbox goes anyway (#finish): the sequence's
 * own end (no_reply, max steps), the sequencing agent's stop (it decides about the steps to come,
 * not the one handed) and a failure.
 */
const KEEPS_HANDED_STEPS = new Set(['no_reply', 'stopped', 'failed']);

/** Which outcome a suppression of the lead's address means for its run. */
const SUPPRESSION_OUTCOME: Record<Reason, string> = { hard_bounce: 'bounced', complaint: 'complained', unsubscribe: 'unsubscribed', manual: 'suppressed' };

export class CampaignEngine {
  readonly #d: EngineDeps;
  readonly #o: EngineOptions;
  readonly #campaigns = new Map<string, LiveCampaign>();
  /** This process's worker of each queue, to wake on a handoff instead of waiting for its poll. */
  #workerIds = new Map<string, string>();
  #budget: DecisionBudget;

  constructor(deps: EngineDeps) {
    this.#d = deps;
    this.#o = { ...DEFAULT_ENGINE_OPTIONS, ...deps.options };
    this.#budget = new DecisionBudget(this.#o.decisionsPerSecond);
  }

  async start(): Promise<void> {
    const work = async (queue: string, worker: Worker, localConcurrency: number, batchSize: number) => {
      this.#workerIds.set(queue, await this.#d.boss.work<{ run_id: string }>(queue, {
        batchSize,
        localConcurrency,
        // Fetch again at once while batches come back full (pg-boss ignores this at batch size 1).
        burstWhenBatchFull: true,
        pollingIntervalSeconds: 0.5,
      }, async (jobs) => {
        // The orchestrator decides one run at a time, in order, within its budget.
        if (worker === 'orchestrator') for (const j of jobs) await this.advance(j.data.run_id, j.id, worker);
        else await Promise.all(jobs.map((j) => this.advance(j.data.run_id, j.id, worker)));
      }));
    };
    // Each role its own pool: a slow agent of one role never holds another role's runs.
    const perRole = Math.max(1, Math.ceil(this.#o.workers / 2));
    for (const role of ROLES) await work(ROLE_QUEUES[role], role, perRole, this.#o.batchSize);
    await work(ORCHESTRATOR_QUEUE, 'orchestrator', 1, 16);
    await work(QUEUES.campaign, null, 1, this.#o.batchSize);
  }

  /** Wakes this process's workers now (the router just queued jobs): no wait for the next poll. */
  nudge(): void {
    for (const id of this.#workerIds.values()) this.#d.boss.notifyWorker(id);
  }

  /** Drops cached campaign state (pause, resume): the next job reads it afresh. */
  forget(campaignId: string): void {
    this.#campaigns.delete(campaignId);
  }

  /**
   * One job's work on a run. A role's worker takes the steps of its role, then hands the run on:
   * to the next role's queue (decentralized, hybrid) or back to the orchestrator (centralized),
   * committing the handoff job. The orchestrator takes one decision per job — which role works the
   * run next — within its budget. A job queued before patterns existed takes every step it can.
   */
  async advance(runId: string, jobId: string, worker: Worker = null): Promise<void> {
    const { db, log } = this.#d;
    if (worker === 'orchestrator') await this.#budget.take();
    for (let hop = 0; hop < MAX_HOPS; hop++) {
      const run = await getRun(db, runId);
      if (!run || run.job_id !== jobId) return; // replaced by a newer job, or gone
      if (!['pending', 'active', 'waiting'].includes(run.status)) return;
      const c = await this.#campaign(run.campaign_id);
      // Paused: resume queues the run again. A campaign marked completed may have a run going again
      // (a dead-lettered run retried, leads added): "completed" is a summary, not a stop.
      if (!c || c.row.status === 'paused' || c.row.status === 'cancelled') return;
      const lead = (await getLead(db, run.lead_id))!;
      const ctx: Ctx = { run, lead, data: lead.data as unknown as Lead, c, now: clockNow(c.clock) };
      const pattern = c.spec.pattern;
      if (worker === 'orchestrator' || (worker !== null && roleOf(run.stage) !== worker)) {
        // The orchestrator's decision (or a job that reached the wrong role, e.g. a wake-up queued
        // before the stage changed): send the run to the role that works its stage.
        const to = worker === 'orchestrator' ? ROLE_QUEUES[roleOf(run.stage)] : queueFor(pattern, run.stage);
        await this.#handOff(ctx, to, worker ?? 'orchestrator').catch((err) => { if (!(err instanceof StaleRun)) throw err; });
        return;
      }
      try {
        if ((await this.#step(ctx)) === 'yield') return;
        // The step is done and the run goes on: with its own worker if the next stage is the same
        // role's, else handed to the queue its pattern names.
        if (worker !== null && (pattern === 'centralized' || roleOf(ctx.run.stage) !== worker)) {
          await this.#handOff(ctx, queueFor(pattern, ctx.run.stage), worker);
          return;
        }
      } catch (err) {
        if (err instanceof StaleRun) return;
        if (err instanceof AgentFailure) return this.#agentFailed(ctx, err);
        if (err instanceof MailroomError && err.status < 500) return this.#finish(ctx, 'failed', err.message, { status: 'dead' });
        throw err; // the store or the queue: pg-boss retries the job
      }
    }
    // Never expected (each hop commits progress); keep going in a fresh job rather than spin.
    log.warn({ runId }, 'campaign run took many steps in one job; continuing in a new job');
    const run = await getRun(db, runId);
    const c = run && (await this.#campaign(run.campaign_id));
    if (run && c && run.job_id === jobId) await commitRun(db, this.#d.boss, run, {}, { job: newJob(queueFor(c.spec.pattern, run.stage)) }).catch(() => {});
  }

  /** Commits the run's next job on `queue`: the durable handoff (a decision span when the orchestrator made it). */
  async #handOff(ctx: Ctx, queue: string, from: Worker | 'orchestrator'): Promise<void> {
    const spans = from === 'orchestrator' ? [this.#decision(ctx, `orchestrator: ${roleOf(ctx.run.stage)} next`, { queue })] : [];
    await this.#commit(ctx, { status: 'active' }, { job: newJob(queue), spans });
    // The next role's worker here takes it now rather than at its next poll (another process's at its poll).
    const id = this.#workerIds.get(queue);
    if (id) this.#d.boss.notifyWorker(id);
  }

  /** A job for this run at `stage` (default: where it is), on the queue its pattern puts that stage. */
  #job(ctx: Ctx, startAfter?: Date, stage: RunStage = ctx.run.stage): JobRequest {
    return newJob(queueFor(ctx.c.spec.pattern, stage), startAfter);
  }

  async #campaign(id: string): Promise<LiveCampaign | null> {
    const cached = this.#campaigns.get(id);
    if (cached && Date.now() - cached.fetchedAt < CACHE_MS) return cached;
    const row = await getCampaign(this.#d.db, id);
    if (!row) return null;
    const spec = row.spec as unknown as CampaignSpec;
    const senders = row.senders as SenderRef[];
    const live: LiveCampaign = cached && cached.row.updated_at.getTime?.() === new Date(row.updated_at).getTime()
      ? { ...cached, row, fetchedAt: Date.now() }
      : {
        row, spec, senders,
        clock: row.clock as CampaignClock,
        agents: resolveAgents(spec.agents, this.#d.registry, { spec: spec.llm, server: this.#d.llm, deferErrors: true }),
        principal: { tokenId: `campaign:${id}`, scopes: new Set(['messages:send', 'messages:read', 'inboxes:read']), inboxIds: new Set(senders.map((s) => s.inbox_id)) },
        responses: { ...DEFAULT_RESPONSES, ...spec.responses },
        fetchedAt: Date.now(),
      };
    this.#campaigns.set(id, live);
    return live;
  }

  // ---- one step ----

  async #step(ctx: Ctx): Promise<Next> {
    const stop = await this.#stopCondition(ctx);
    if (stop) {
      await this.#finish(ctx, stop.outcome, stop.detail);
      return 'yield';
    }
    const reply = await this.#pendingReply(ctx);
    if (reply) return this.#handleReply(ctx, reply);
    switch (ctx.run.stage) {
      case 'research': return this.#research(ctx);
      case 'personalize': return this.#personalize(ctx);
      case 'sequence': return this.#sequence(ctx);
      case 'send': return this.#send(ctx);
      case 'await_reply': return this.#awaitReply(ctx);
      default: return 'yield';
    }
  }

  /** A bounce of anything the run sent, or the lead's address suppressed: the run ends. */
  async #stopCondition(ctx: Ctx): Promise<{ outcome: string; detail: string } | null> {
    const { run, lead, c } = ctx;
    if (!run.inbox_id) return null; // nothing sent yet: the outbox checks suppression at the first send
    const bounce = await bounceOf(this.#d.db, run.id);
    if (bounce && c.spec.stop.on_bounce) {
      return { outcome: 'bounced', detail: `${bounce.status}: ${bounce.bounce_reason ?? bounce.response ?? 'undeliverable'}` };
    }
    const sender = c.senders.find((s) => s.inbox_id === run.inbox_id);
    const suppressed = await suppressedFor(this.#d.db, run.inbox_id, domainOf(sender?.address ?? ''), [lead.email]);
    const reason = suppressed.get(lead.email_key);
    if (reason) {
      const outcome = SUPPRESSION_OUTCOME[reason];
      const wanted = { bounced: c.spec.stop.on_bounce, complained: c.spec.stop.on_complaint, unsubscribed: c.spec.stop.on_unsubscribe, suppressed: c.spec.stop.on_suppression }[outcome as 'bounced'];
      // Even when the campaign would go on, the outbox refuses a suppressed address: say why it ended.
      return { outcome: wanted === false ? 'suppressed' : outcome, detail: `${lead.email} is suppressed (${reason})` };
    }
    return null;
  }

  async #pendingReply(ctx: Ctx): Promise<ReplyCandidate | undefined> {
    const { run, lead, c } = ctx;
    if (!run.inbox_id) return undefined;
    const since = await firstSendAt(this.#d.db, run.id);
    if (!since) return undefined;
    const company = c.spec.stop.on_company_reply && !FREEMAIL.has(lead.domain) ? lead.domain : null;
    return nextReply(this.#d.db, run, lead.email_key, company, since);
  }

  async #research(ctx: Ctx): Promise<Next> {
    const { run, data, lead, c } = ctx;
    const history = await historyWith(this.#d.db, { address: lead.email, domain: FREEMAIL.has(lead.domain) ? null : lead.domain, excludeThread: run.thread_id });
    const call = await callRole('research', c.agents, { lead: data, history, campaign: { id: c.row.id, name: c.row.name, description: c.spec.description } }, this.#roleCtx(ctx), this.#o.agentTimeoutMs);
    await this.#commit(ctx, { notes: call.output, stage: 'personalize', status: 'active', attempts: 0, last_error: null }, {
      spans: [this.#agentSpan(ctx, 'research', call, { history_threads: history.with_address.length + history.with_domain.length }), this.#handoff(ctx, 'research', 'personalize')],
    });
    return 'continue';
  }

  async #personalize(ctx: Ctx): Promise<Next> {
    const { run, data, c } = ctx;
    const step = c.spec.steps[run.step];
    const thread = run.thread_id ? await threadMessages(this.#d.db, run.thread_id) : [];
    const call = await callRole('personalize', c.agents, {
      lead: data,
      notes: (run.notes ?? { summary: '', facts: [], sources: [], variables: {} }) as never,
      step: { index: run.step, count: this.#stepCount(c), subject: step.subject, text: step.text, html: step.html },
      thread,
    }, this.#roleCtx(ctx), this.#o.agentTimeoutMs);
    await this.#commit(ctx, { draft: call.output, stage: 'sequence', attempts: 0, last_error: null }, {
      spans: [this.#agentSpan(ctx, 'personalize', call, { step: run.step + 1 }), this.#handoff(ctx, 'personalize', 'sequence')],
    });
    return 'continue';
  }

  async #sequence(ctx: Ctx): Promise<Next> {
    const { run, data, lead, c, now } = ctx;
    const step = c.spec.steps[run.step];
    const sent = await sentSteps(this.#d.db, run.id);
    // A follow-up is decided only once its predecessor has left the outbox (a rate limit may hold
    // it there for a while): its delay counts from when it really went, and a bounce at the
    // remote's RCPT is known before the next step is. message.sent (or bounced) wakes the run.
    if (sent.some((x) => x.pending)) {
      await this.#commit(ctx, { status: 'waiting' }, {
        job: this.#job(ctx, new Date(Date.now() + DELIVERY_RECHECK_MS)),
        spans: [this.#decision(ctx, `waiting for step ${run.step} to leave the outbox`, { message_id: sent.find((x) => x.pending)!.message_id })],
      });
      // It may have left between the look and the commit, when the router saw this run busy and let
      // it be: look once more, and wake it now rather than at the fallback.
      if (!(await sentSteps(this.#d.db, run.id)).some((x) => x.pending)) {
        await this.#d.db.transaction().execute((trx) => wakeRuns(trx, this.#d.boss, [run.id], { waitingIn: 'sequence' }));
      }
      return 'yield';
    }
    const sentAt = (x: (typeof sent)[number]) => (x.delivered_at ? clockNow(c.clock, x.delivered_at.getTime()) : x.sim_at);
    const call = await callRole('sequence', c.agents, {
      lead: data,
      timezone: lead.timezone,
      history: { sent: sent.map((s) => ({ step: s.step, at: iso(sentAt(s)) })), out_of_office_until: run.ooo_until },
      policy: { next_step: run.step, step_count: c.spec.steps.length, max_steps: this.#stepCount(c), delay_business_days: step.delay_business_days, send_window: c.spec.send_window },
      now: iso(now),
    }, this.#roleCtx(ctx), this.#o.agentTimeoutMs);
    const d = call.output;
    const span = this.#agentSpan(ctx, 'sequence', call, { step: run.step + 1 });
    if (d.action === 'stop') {
      await this.#finish(ctx, 'stopped', d.reason, { spans: [span] });
      return 'yield';
    }
    const sendAt = new Date(d.send_at);
    await this.#wait(ctx, sendAt, { stage: 'send', send_at: sendAt, attempts: 0, last_error: null }, [span, this.#handoff(ctx, 'sequence', 'send')]);
    return sendAt <= now ? 'continue' : 'yield';
  }

  /**
   * Commits `changes`; when `until` is later than now, also a timer job for it (status waiting),
   * after which the caller yields: the run is the new job's.
   */
  async #wait(ctx: Ctx, until: Date, changes: RunChanges, spans: SpanInput[] = [], also?: CommitOptions['also']): Promise<void> {
    if (until <= ctx.now) {
      await this.#commit(ctx, { ...changes, status: 'active' }, { spans, also });
      return;
    }
    const startAfter = new Date(realAt(ctx.c.clock, until));
    await this.#commit(ctx, { ...changes, status: 'waiting' }, { spans, also, job: this.#job(ctx, startAfter, changes.stage ?? ctx.run.stage) });
  }

  async #send(ctx: Ctx): Promise<Next> {
    const { run, lead, c, now } = ctx;
    const sendAt = run.send_at ? new Date(run.send_at) : now;
    if (sendAt > now) {
      // Woken early (a reply that changed nothing, an auto-reply): wait again for the send time.
      await this.#wait(ctx, sendAt, {});
      return 'yield';
    }
    if (await this.#waitForUnread(ctx)) return 'yield';
    const approval = await this.#approval(ctx);
    if (approval === 'wait') return 'yield';
    const key = `campaign:${c.row.id}:lead:${lead.id}:step:${run.step}`;
    let reserved = await getSend(this.#d.db, run.id, run.step);
    if (!reserved) {
      // Fired late (a slow queue, a restart): only send inside the recipient's window; else decide again.
      if (!isInWindow(now, lead.timezone, c.spec.send_window)) {
        await this.#commit(ctx, { stage: 'sequence' }, { spans: [this.#decision(ctx, 'outside send window', { now: iso(now), timezone: lead.timezone })] });
        return 'continue';
      }
      const day = localParts(now, c.spec.timezone).date;
      const inbox = await this.#reserve(ctx, key, day, approval?.inbox_id);
      if (!inbox) {
        const tomorrow = startOfLocalDate(nextDate(day), c.spec.timezone);
        const at = windowSlot(tomorrow, lead.timezone, c.spec.send_window, `${lead.email_key}:${run.step}:cap`);
        await this.#wait(ctx, at, { send_at: at }, [this.#decision(ctx, 'daily cap reached', { day, next: iso(at) })]);
        return 'yield';
      }
      reserved = (await getSend(this.#d.db, run.id, run.step))!;
    }

    // An approved draft is sent as the person left it (edits included).
    const draft = (approval ? approval.request : run.draft ?? {}) as { subject?: string; text: string; html?: string };
    const headers = {
      'X-Mailroom-Campaign': c.row.id,
      'X-Mailroom-Lead': lead.id,
      'X-Mailroom-Step': String(run.step + 1),
      // Fixed at the reservation, so a repeated attempt sends the identical request (an idempotent replay).
      'X-Mailroom-Scheduled-At': iso(new Date(reserved.sim_at)),
    };
    const req = {
      text: draft.text, html: draft.html, headers, trace_id: run.trace_id, marketing: c.spec.marketing,
      labels: ['campaign', ...c.spec.labels], metadata: { campaign_id: c.row.id, run_id: run.id, lead_id: lead.id, step: run.step + 1 },
    };
    const t0 = performance.now();
    const startedAt = new Date();
    let message: { id: string; thread_id: string; delivery?: { scheduled_at: string | null } | null };
    let replayed = false;
    try {
      const sent = run.step === 0 || !run.last_message_id
        ? await this.#d.outbox.send(c.principal, reserved.inbox_id, { ...req, to: [lead.email], subject: draft.subject ?? c.spec.steps[0].subject }, key)
        : await this.#d.outbox.reply(c.principal, run.last_message_id, { ...req, ...(draft.subject ? { subject: draft.subject } : {}) }, false, key);
      message = sent.message;
      replayed = sent.replayed;
    } catch (err) {
      if (err instanceof MailroomError && err.code === 'recipient_suppressed') {
        await this.#finish(ctx, 'suppressed', err.message);
        return 'yield';
      }
      throw err;
    }
    const more = run.step + 1 < this.#stepCount(c);
    const span: SpanInput = { kind: 'send', name: `send step ${run.step + 1}`, startedAt, durationMs: performance.now() - t0, simAt: now, input: { to: lead.email, inbox_id: reserved.inbox_id, idempotency_key: key }, output: { message_id: message.id, thread_id: message.thread_id, replayed, scheduled_at: message.delivery?.scheduled_at ?? null } };
    const changes: RunChanges = {
      step: run.step + 1, inbox_id: reserved.inbox_id, thread_id: message.thread_id, last_message_id: message.id, draft: null,
      attempts: 0, last_error: null,
    };
    const markSent = async (trx: Parameters<NonNullable<CommitOptions['also']>>[0]) => {
      await trx.updateTable('campaign_sends').set({ status: 'sent', message_id: message.id }).where('run_id', '=', run.id).where('step', '=', run.step).execute();
      if (approval) await markDraftSentIn(trx as unknown as Kysely<Database>, approval, message);
    };
    if (more) {
      await this.#commit(ctx, { ...changes, stage: 'personalize', status: 'active' }, { spans: [span, this.#handoff(ctx, 'send', 'personalize')], also: markSent });
      return 'continue';
    }
    // The last step went: wait for a reply until the final window ends, then the run is over.
    const until = addBusinessDays(now, lead.timezone, c.spec.stop.final_wait_business_days);
    await this.#wait(ctx, until, { ...changes, stage: 'await_reply', send_at: until }, [span], markSent);
    return until <= now ? 'continue' : 'yield';
  }

  /**
   * A follow-up, or the end of the wait for a reply, is decided only once all mail the run's inbox
   * acknowledged is readable: a reply answered `250` just before a crash is parsed after the
   * restart (on PostgreSQL when the dead worker's ingest job is retried, up to a minute later), and
   * deciding before it would send the step that reply stops. Such a run looks again shortly; the
   * router wakes it at once if the mail turns out to be its reply. True when it waits.
   */
  async #waitForUnread(ctx: Ctx): Promise<boolean> {
    const { run, c } = ctx;
    if (!run.inbox_id || !run.last_message_id || !this.#d.unreadInbound) return false;
    if (!(await this.#d.unreadInbound(run.inbox_id))) return false;
    await this.#wait(ctx, clockNow(c.clock, Date.now() + UNREAD_RECHECK_MS), {});
    return true;
  }

  /**
   * A step that needs a person's approval (`approval: required`, per campaign or step): the first
   * time, the step is written as a draft and the run waits without a timer (draft.approved or
   * draft.rejected wakes it, and so does a reply, which ends it and cancels the draft). Returns
   * null when no approval is needed, the approved draft to send, or 'wait'. A rejected draft ends
   * the run.
   */
  async #approval(ctx: Ctx): Promise<DraftRow | null | 'wait'> {
    const { run, lead, c } = ctx;
    const step = c.spec.steps[run.step];
    if ((step?.approval ?? c.spec.approval) !== 'required') return null;
    const existing = await draftForStep(this.#d.db, run.id, run.step);
    if (existing?.status === 'approved' || existing?.status === 'sent') return existing;
    if (existing?.status === 'rejected') {
      await this.#finish(ctx, 'draft_rejected', `step ${run.step + 1} rejected by ${existing.reviewed_by ?? 'a reviewer'}${existing.review_note ? `: ${existing.review_note}` : ''}`);
      return 'wait';
    }
    if (!existing) {
      const content = (run.draft ?? {}) as { subject?: string; text: string; html?: string };
      const follow = run.step > 0 && run.last_message_id;
      // A first message is drafted from the sender inbox least used today; it is then sent from that one.
      const inboxId = run.inbox_id ?? (await this.#leastUsedSender(ctx));
      await insertDraft(this.#d.db, {
        id: newId('drf'), inbox_id: inboxId, reply_to_message_id: follow ? run.last_message_id : null, reply_all: false,
        request: {
          ...(follow ? {} : { to: [lead.email], subject: content.subject ?? c.spec.steps[0].subject }),
          ...(follow && content.subject ? { subject: content.subject } : {}),
          text: content.text, ...(content.html ? { html: content.html } : {}), trace_id: run.trace_id,
          metadata: { campaign_id: c.row.id, run_id: run.id, lead_id: lead.id, step: run.step + 1 },
        },
        send_at: null, client_id: null, token_id: `campaign:${c.row.id}`, campaign_id: c.row.id, run_id: run.id, step: run.step,
      }, { inbox_id: inboxId, thread_id: run.thread_id, trace_id: run.trace_id, data: { campaign_id: c.row.id, run_id: run.id, step: run.step + 1 } });
    }
    await this.#commit(ctx, { status: 'waiting' }, { job: null, spans: existing ? [] : [this.#decision(ctx, `step ${run.step + 1} drafted: waiting for approval`, {})] });
    return 'wait';
  }

  async #leastUsedSender(ctx: Ctx): Promise<string> {
    const usage = await usageFor(this.#d.db, ctx.c.row.id, localParts(ctx.now, ctx.c.spec.timezone).date);
    return [...ctx.c.senders].sort((a, b) => (usage.get(a.inbox_id) ?? 0) / a.daily_cap - (usage.get(b.inbox_id) ?? 0) / b.daily_cap)[0].inbox_id;
  }

  /** Takes a daily-cap slot for this send: the run's inbox for a follow-up, the least used sender for a first message. */
  async #reserve(ctx: Ctx, key: string, day: string, draftInbox?: string): Promise<string | null> {
    const { run, c, now } = ctx;
    const usage = await usageFor(this.#d.db, c.row.id, day);
    // A follow-up goes from the thread's inbox; an approved first message from the inbox its draft showed.
    const fixed = run.inbox_id ?? draftInbox;
    const candidates = fixed
      ? c.senders.filter((s) => s.inbox_id === fixed)
      : [...c.senders].sort((a, b) => (usage.get(a.inbox_id) ?? 0) / a.daily_cap - (usage.get(b.inbox_id) ?? 0) / b.daily_cap);
    for (const s of candidates) {
      if ((usage.get(s.inbox_id) ?? 0) >= s.daily_cap) continue;
      try {
        if (await reserveSend(this.#d.db, { runId: run.id, step: run.step, campaignId: c.row.id, inboxId: s.inbox_id, day, cap: s.daily_cap, key, simAt: now })) return s.inbox_id;
      } catch (err) {
        // Another job of this run reserved the step first (a unique violation): use its reservation.
        const existing = await getSend(this.#d.db, run.id, run.step);
        if (existing) return existing.inbox_id;
        throw err;
      }
    }
    return null;
  }

  async #awaitReply(ctx: Ctx): Promise<Next> {
    const until = ctx.run.send_at ? new Date(ctx.run.send_at) : ctx.now;
    if (until > ctx.now) {
      await this.#wait(ctx, until, {});
      return 'yield';
    }
    if (await this.#waitForUnread(ctx)) return 'yield';
    await this.#finish(ctx, 'no_reply', `no reply within ${ctx.c.spec.stop.final_wait_business_days} business days of the last step`);
    return 'yield';
  }

  // ---- replies ----

  async #handleReply(ctx: Ctx, reply: ReplyCandidate): Promise<Next> {
    const { run, lead, c, now } = ctx;
    const from = (reply.from_address ?? '').toLowerCase();
    const sender: 'lead' | 'company' | 'other' = from === lead.email_key ? 'lead' : domainOf(from) === lead.domain ? 'company' : 'other';
    const inThread = reply.thread_id === run.thread_id;
    const record = (classification: string | null, action: string, decision: Record<string, unknown>) => async (trx: Parameters<NonNullable<CommitOptions['also']>>[0]) => {
      await trx.insertInto('campaign_replies').values({
        run_id: run.id, message_id: reply.id, campaign_id: c.row.id, sender, classification, action, decision: JSON.stringify(decision), created_at: new Date(),
      }).execute();
    };
    const replyEvent = (data: Record<string, unknown>): NewEvent => ({ type: 'run.reply', inbox_id: run.inbox_id, message_id: reply.id, thread_id: reply.thread_id, trace_id: run.trace_id, data: { run_id: run.id, campaign_id: c.row.id, lead: lead.email, sender, ...data } });

    // Held by the inbox's injection policy: its content reaches no agent. A human is told, with a pointer only.
    if (reply.disposition && (HELD as readonly string[]).includes(reply.disposition)) {
      await this.#escalate(ctx, reply, { classification: null, summary: `reply held by the injection policy (${reply.disposition}); its content was not shown to any agent`, held: true });
      await this.#finish(ctx, 'needs_human', `reply ${reply.id} was ${reply.disposition}; escalated to ${c.spec.escalate_to ?? 'nobody (no escalate_to)'}`, {
        status: 'needs_human', also: record(null, 'escalate', { held: reply.disposition }), events: [replyEvent({ held: reply.disposition, action: 'escalate' })],
      });
      return 'yield';
    }
    // Someone else at the company wrote, not in this run's thread: the company has answered; stop here.
    if (sender !== 'lead' && !inThread) {
      await this.#finish(ctx, 'company_replied', `${reply.from_address} (same company) replied in another thread`, {
        also: record(null, 'stop', { company_reply: true }), events: [replyEvent({ action: 'stop', company_reply: true })],
      });
      return 'yield';
    }

    const view = await this.#d.messages.get(c.principal, reply.id);
    // A delivery report or an abuse report in the thread is not somebody's answer: it ends the run as
    // what it reports, whether or not the outbox has matched it to the send yet (that may come a
    // moment later, from the report job).
    if ((view.kind === 'bounce' && c.spec.stop.on_bounce) || (view.kind === 'complaint' && c.spec.stop.on_complaint)) {
      const outcome = view.kind === 'bounce' ? 'bounced' : 'complained';
      await this.#finish(ctx, outcome, `${view.kind} report ${reply.id} from ${reply.from_address ?? 'the mail system'}`, {
        also: record(null, 'stop', { report: view.kind }), events: [replyEvent({ action: 'stop', report: view.kind })],
      });
      return 'yield';
    }
    const security = (view.security ?? {}) as { injection?: { level: string; score: number }; auth?: { dmarc?: { result?: string } } };
    const injection = security.injection ? { level: security.injection.level, score: security.injection.score } : null;
    // High risk but delivered (an inbox whose policy only flags): never answered automatically either.
    if (injection && (injection.level === 'high' || injection.level === 'unknown')) {
      await this.#escalate(ctx, reply, { classification: null, summary: `high-risk reply (injection ${injection.level}, score ${injection.score}); not answered automatically`, held: true });
      await this.#finish(ctx, 'needs_human', `reply ${reply.id} scored ${injection.level} injection risk; escalated`, {
        status: 'needs_human', also: record(null, 'escalate', { injection }), events: [replyEvent({ injection, action: 'escalate' })],
      });
      return 'yield';
    }

    const thread = await threadMessages(this.#d.db, reply.thread_id);
    // A fence fixed per reply (still unknowable to its sender): the same reply renders the same
    // text every time, so a repeated step sends an identical escalation (an idempotent replay).
    const fence = `UNTRUSTED-${createHash('sha256').update(`${run.trace_id}:${reply.id}`).digest('hex').slice(0, 16)}`;
    const safeView = agentView(view, { fence });
    const call = await callRole('respond', c.agents, {
      lead: ctx.data,
      reply: {
        message_id: reply.id, from: reply.from_address, sender, subject: view.subject,
        agent_view: safeView, extracted_text: view.extracted_text ?? view.text ?? '',
        kind: view.kind, return_date: view.return_date,
        injection, dmarc: security.auth?.dmarc?.result ?? null,
      },
      thread: thread.filter((m: HistoryMessage) => m.id !== reply.id),
      allowed: c.responses,
    }, this.#roleCtx(ctx), this.#o.agentTimeoutMs);
    let decision: ResponseDecision = call.output;
    const span = this.#agentSpan(ctx, 'respond', call, { message_id: reply.id });
    const spans: SpanInput[] = [span];
    // The campaign decides what each class of reply may cause; an agent proposing anything else is overruled.
    const allowed = c.responses[decision.classification];
    if (decision.action !== allowed) {
      spans.push(this.#decision(ctx, `refused action "${decision.action}" for ${decision.classification} (allowed: ${allowed}); escalated`, { proposed: decision.action, allowed }));
      decision = { ...decision, action: 'escalate' };
    }
    const base = { also: record(decision.classification, decision.action, decision as never), events: [replyEvent({ classification: decision.classification, action: decision.action, summary: decision.summary })] };
    const finishReplied = (extra: Partial<FinishOptions> = {}) => this.#finish(ctx, 'replied', decision.summary, { ...base, ...extra, spans: [...spans, ...(extra.spans ?? [])], replyClass: decision.classification });

    switch (decision.action) {
      case 'escalate':
        await this.#escalate(ctx, reply, { classification: decision.classification, summary: decision.summary, referral: decision.referral, agentView: safeView, held: false });
        await finishReplied({
          events: [...base.events, {
            type: 'run.escalated', inbox_id: run.inbox_id, message_id: reply.id, thread_id: reply.thread_id, trace_id: run.trace_id,
            data: { run_id: run.id, campaign_id: c.row.id, lead: lead.email, to: c.spec.escalate_to ?? null, classification: decision.classification, referral: decision.referral },
          }],
        });
        return 'yield';
      case 'reply':
      case 'draft': {
        const text = decision.text ?? renderTemplate(c.spec.reply_template ?? '', { ...ctx.data, ...ctx.data.fields, classification: decision.classification }).text;
        if (decision.action === 'reply' && text.trim()) {
          await onceOnly(this.#d.outbox.reply(c.principal, reply.id, { text, trace_id: run.trace_id, metadata: { campaign_id: c.row.id, run_id: run.id, response_to: reply.id } }, false, `campaign:${c.row.id}:run:${run.id}:reply:${reply.id}`));
        }
        let detail = decision.summary;
        if (decision.action === 'draft' && text.trim()) {
          // An answer for a person to approve (GET /v1/drafts): keyed by (run, reply) like a sent answer,
          // so a repeated step finds the same draft. Approved, it is sent by the draft-send job.
          const { row } = await insertDraft(this.#d.db, {
            id: newId('drf'), inbox_id: run.inbox_id!, reply_to_message_id: reply.id, reply_all: false,
            request: { text, trace_id: run.trace_id, metadata: { campaign_id: c.row.id, run_id: run.id, response_to: reply.id } },
            send_at: null, client_id: `campaign:${c.row.id}:run:${run.id}:reply:${reply.id}`, token_id: `campaign:${c.row.id}`, campaign_id: c.row.id, run_id: run.id,
          }, { inbox_id: run.inbox_id, thread_id: reply.thread_id, trace_id: run.trace_id, data: { campaign_id: c.row.id, run_id: run.id, response_to: reply.id } });
          detail = `answer drafted for approval (${row.id}): ${text.slice(0, 400)}`;
        }
        await finishReplied({ detail });
        return 'yield';
      }
      case 'archive':
      case 'stop':
        await finishReplied();
        return 'yield';
      case 'stop_and_suppress': {
        const sender = c.senders.find((s) => s.inbox_id === run.inbox_id);
        await this.#finish(ctx, 'unsubscribed', decision.summary, {
          ...base, spans, replyClass: decision.classification,
          also: async (trx) => {
            await base.also(trx);
            await addSuppression(trx as unknown as Kysely<Database>, { address: lead.email, scope: 'domain', scopeValue: domainOf(sender?.address ?? ''), reason: 'unsubscribe', detail: `reply ${reply.id} to campaign ${c.row.id}` });
          },
        });
        return 'yield';
      }
      case 'reschedule': {
        const back = decision.return_date ?? view.return_date ?? localParts(addBusinessDays(now, lead.timezone, 5), lead.timezone).date;
        const resume: RunChanges = { ooo_until: back };
        if (run.stage === 'send' || run.stage === 'sequence') Object.assign(resume, { stage: 'sequence', status: 'active' });
        if (run.stage === 'await_reply') {
          const until = addBusinessDays(startOfLocalDate(back, lead.timezone), lead.timezone, c.spec.stop.final_wait_business_days);
          if (!run.send_at || until > new Date(run.send_at)) Object.assign(resume, { send_at: until });
        }
        await this.#commit(ctx, resume, { ...base, spans: [...spans, this.#decision(ctx, `out of office until ${back}: follow-ups resume after`, { return_date: back })] });
        return 'continue';
      }
      case 'ignore':
      default:
        if (decision.classification === 'auto_reply' && c.spec.stop.on_auto_reply === 'stop') {
          await this.#finish(ctx, 'auto_reply', decision.summary, { ...base, spans, replyClass: decision.classification });
          return 'yield';
        }
        await this.#commit(ctx, {}, { ...base, spans });
        return 'continue';
    }
  }

  /** Emails the campaign's human (escalate_to) from the run's inbox; idempotent per (run, reply). */
  async #escalate(ctx: Ctx, reply: ReplyCandidate, e: { classification: string | null; summary: string; referral?: ResponseDecision['referral']; agentView?: string; held: boolean }): Promise<void> {
    const { run, lead, c } = ctx;
    if (!c.spec.escalate_to || !run.inbox_id) return;
    const lines = [
      `Campaign: ${c.row.name} (${c.row.id})`,
      `Lead: ${lead.email}${ctx.data.company ? ` at ${ctx.data.company}` : ''}`,
      `Reply: ${reply.id} from ${reply.from_address ?? '(unknown)'}`,
      `Classification: ${e.classification ?? 'not classified'}`,
      `Summary: ${e.summary}`,
      ...(e.referral?.email || e.referral?.name ? [`Referral: ${[e.referral.name, e.referral.email].filter(Boolean).join(' ')}`] : []),
      `Run: ${run.id}   Trace: ${run.trace_id}`,
      '',
      e.held
        ? 'The reply was not shown to any agent. Review it in Mailroom (GET /v1/messages/' + reply.id + '), release it if it is safe.'
        : `What the reply says (Mailroom's agent view):\n\n${e.agentView ?? ''}`,
    ];
    await onceOnly(this.#d.outbox.send(c.principal, run.inbox_id, {
      to: [c.spec.escalate_to],
      subject: `[Mailroom] ${e.held ? 'needs a human' : (e.classification ?? 'reply')}: ${reply.from_address ?? 'a lead'} (${c.row.name})`.slice(0, 900),
      text: lines.join('\n'),
      trace_id: run.trace_id,
      marketing: false,
      labels: ['campaign', 'escalation'],
      metadata: { campaign_id: c.row.id, run_id: run.id, escalates: reply.id },
    }, `campaign:${c.row.id}:run:${run.id}:escalate:${reply.id}`));
  }

  // ---- endings and failures ----

  async #finish(ctx: Ctx, outcome: string, detail: string, o: FinishOptions = {}): Promise<void> {
    const { run, c } = ctx;
    const status = o.status ?? 'done';
    await this.#commit(ctx, {
      status, stage: 'finished', outcome, detail: detail.slice(0, 2000), reply_class: o.replyClass ?? run.reply_class, finished_at: new Date(),
      ...(o.detail ? { detail: o.detail.slice(0, 2000) } : {}),
    }, {
      job: null,
      spans: [...(o.spans ?? []), this.#decision(ctx, `run ended: ${outcome}`, { outcome, detail })],
      events: [
        ...(o.events ?? []),
        {
          type: status === 'dead' ? 'run.dead' : status === 'needs_human' ? 'run.escalated' : 'run.finished',
          inbox_id: run.inbox_id, thread_id: run.thread_id, trace_id: run.trace_id,
          data: { run_id: run.id, campaign_id: c.row.id, lead: ctx.lead.email, outcome, detail: detail.slice(0, 500) },
        },
      ],
      also: async (trx) => {
        await o.also?.(trx);
        await cancelRunDrafts(trx as unknown as Kysely<Database>, run.id, `run ended: ${outcome}`);
        // A step handed to the outbox but still waiting there (a rate limit, a 4xx) is taken back when
        // the run ended on what the lead did (a reply, a bounce, an unsubscribe, a suppression, an
        // escalation): a run that ended on a reply must not send its follow-up an hour later.
        if (!KEEPS_HANDED_STEPS.has(outcome)) {
          const handed = await trx.selectFrom('campaign_sends').select('message_id').where('run_id', '=', run.id).where('message_id', 'is not', null).execute();
          await recallMessages(trx as unknown as Kysely<Database>, handed.map((h) => h.message_id!), 'run_ended', `campaign run ${run.id} ended: ${outcome}`);
        }
      },
    });
    this.#d.onRunEnded?.(c.row.id);
  }

  async #agentFailed(ctx: Ctx, err: AgentFailure): Promise<void> {
    const { run, c } = ctx;
    const attempts = run.attempts + 1;
    const span: SpanInput = {
      kind: 'agent', name: err.role, status: 'error', startedAt: new Date(), durationMs: 0, simAt: ctx.now, error: err.message.slice(0, 2000),
      // What a model-backed agent tried before failing (each 429, the call that timed out): the reason's evidence.
      ...(err.usage.length ? { input: { model_calls: err.usage } } : {}),
    };
    try {
      if (attempts >= this.#o.maxAttempts) {
        await this.#commit(ctx, { status: 'dead', attempts, last_error: err.message.slice(0, 2000), detail: `dead-lettered after ${attempts} failed attempts: ${err.message}`.slice(0, 2000) }, {
          job: null, spans: [span],
          events: [{ type: 'run.dead', inbox_id: run.inbox_id, thread_id: run.thread_id, trace_id: run.trace_id, data: { run_id: run.id, campaign_id: c.row.id, lead: ctx.lead.email, stage: run.stage, error: err.message.slice(0, 500), attempts } }],
        });
        this.#d.log.warn({ runId: run.id, err: err.message }, 'campaign run dead-lettered');
        this.#d.onRunEnded?.(c.row.id);
        return;
      }
      // Exponential backoff with full jitter, in real time (a retry is about the agent, not the campaign's clock).
      const delay = this.#o.retryBaseMs * 2 ** (attempts - 1) * (0.5 + Math.random() / 2);
      await this.#commit(ctx, { attempts, last_error: err.message.slice(0, 2000), status: 'active' }, { spans: [span], job: this.#job(ctx, new Date(Date.now() + delay)) });
    } catch (e) {
      if (!(e instanceof StaleRun)) throw e;
    }
  }

  // ---- helpers ----

  #stepCount(c: LiveCampaign): number {
    return Math.min(c.spec.steps.length, c.spec.stop.max_steps ?? c.spec.steps.length);
  }

  /** Commits a change of the run; after one that names a new job, the caller must yield. */
  async #commit(ctx: Ctx, changes: RunChanges, o: CommitOptions = {}): Promise<void> {
    ctx.run = await commitRun(this.#d.db, this.#d.boss, ctx.run, changes, o);
  }

  #roleCtx(ctx: Ctx) {
    return { campaignId: ctx.c.row.id, runId: ctx.run.id, traceId: ctx.run.trace_id };
  }

  #agentSpan(ctx: Ctx, role: string, call: { startedAt: Date; durationMs: number; output: unknown; usage?: ModelUsage[] }, input: Record<string, unknown>): SpanInput {
    // A model-backed agent's calls (tokens, latency, attempts) go on the span beside its input.
    const model = call.usage?.length ? { model_calls: call.usage } : {};
    return { kind: 'agent', name: role, startedAt: call.startedAt, durationMs: call.durationMs, simAt: ctx.now, input: { ...input, ...model, worker: WORKER }, output: call.output };
  }

  #handoff(ctx: Ctx, from: string, to: string): SpanInput {
    return { kind: 'handoff', name: `${from} → ${to}`, startedAt: new Date(), durationMs: 0, simAt: ctx.now };
  }

  #decision(ctx: Ctx, name: string, output: Record<string, unknown>): SpanInput {
    return { kind: 'decision', name, startedAt: new Date(), durationMs: 0, simAt: ctx.now, output };
  }
}

/**
 * An escalation or an answer is keyed by (run, reply): if the key was used already, an earlier
 * attempt of this step sent it — with a model's wording that may differ this time, which the outbox
 * refuses as a different request. The mail went out once; that is the point, so carry on.
 */
async function onceOnly(send: Promise<unknown>): Promise<void> {
  try {
    await send;
  } catch (err) {
    if (!(err instanceof MailroomError && err.code === 'idempotency_key_reused')) throw err;
  }
}

interface FinishOptions {
  status?: 'done' | 'needs_human' | 'dead';
  spans?: SpanInput[];
  events?: NewEvent[];
  also?: CommitOptions['also'];
  replyClass?: string;
  detail?: string;
}
