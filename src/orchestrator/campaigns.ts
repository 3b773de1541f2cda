import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import type { PgBoss } from 'pg-boss';
import { canSeeInbox, hasScope, type Principal } from '../auth/scopes.ts';
import { MailroomError, notFound } from '../errors.ts';
import { appendEvents } from '../events/events.ts';
import { newId } from '../ids.ts';
import type { Inboxes } from '../inboxes/inboxes.ts';
import { domainOf } from '../outbound/addresses.ts';
import { clampLimit, decodeCursor, toPage, type Page, type PageRequest } from '../store/pagination.ts';
import type { Database } from '../store/schema.ts';
import { LLM_AGENT, resolveAgents } from './agents/index.ts';
import { checkLlmEndpoint } from './llm/egress.ts';
import { resolveLlmSettings, type LlmServerSettings } from './llm/settings.ts';
import { leadTimeZone, type CampaignClock } from './calendar.ts';
import type { CampaignEngine } from './engine.ts';
import type { AgentRegistry } from './roles.ts';
import { queueFor } from './patterns.ts';
import { ensureRouterCursor } from './router.ts';
import { CampaignSpec, Lead, type LeadInput } from './spec.ts';
import { ENDED, eventsOfTrace, funnel, getCampaign, getRun, LIVE, queueRunJobs, spansOf, type Funnel } from './store.ts';
import { orchestratorDb, type CampaignRow, type Db, type LeadRow, type RunRow, type SenderRef } from './tables.ts';

/**
 * Campaigns as the API, the CLI and `mailroom demo` see them: create one (its leads become runs,
 * each queued as a job in the same transaction), add leads, pause and resume, and read the funnel,
 * the runs, a run's trace and the dead-letter list.
 *
 * Visibility follows the inbox rule of the rest of the API: a token sees a campaign when it can see
 * every inbox the campaign sends from, and gets 404 otherwise.
 */

export interface CampaignView {
  id: string;
  name: string;
  status: CampaignRow['status'];
  senders: SenderRef[];
  steps: number;
  clock: { scale: number; now: string };
  client_id: string | null;
  created_at: string;
  updated_at: string;
  completed_at: string | null;
  funnel: Funnel;
  spec: Record<string, unknown>;
}

export interface RunView {
  id: string;
  campaign_id: string;
  lead: { id: string; email: string; timezone: string; timezone_source: string; data: Record<string, unknown> };
  trace_id: string;
  status: RunRow['status'];
  stage: RunRow['stage'];
  /** Steps sent so far. */
  steps_sent: number;
  inbox_id: string | null;
  thread_id: string | null;
  send_at: string | null;
  out_of_office_until: string | null;
  outcome: string | null;
  reply_class: string | null;
  detail: string | null;
  attempts: number;
  last_error: string | null;
  created_at: string;
  updated_at: string;
  finished_at: string | null;
}

export interface TraceEntry {
  at: string;
  /** Campaign-clock time, for spans. */
  sim_at: string | null;
  kind: string;
  name: string;
  status: string;
  duration_ms: number;
  input?: unknown;
  output?: unknown;
  error?: string | null;
  message_id?: string | null;
}

const iso = (d: Date | string | null) => (d === null ? null : new Date(d).toISOString());

export interface CreateCampaignOptions {
  clientId?: string;
  /** Leads beyond those in the spec (a CSV import), appended in order. */
  leads?: LeadInput[];
}

export class Campaigns {
  readonly #db: Kysely<Database>;
  readonly #odb: Db;
  readonly #boss: PgBoss;
  readonly #inboxes: Inboxes;
  readonly #registry: AgentRegistry;
  readonly #llm: LlmServerSettings | undefined;
  #engine: CampaignEngine | null = null;

  constructor(d: { db: Kysely<Database>; boss: PgBoss; inboxes: Inboxes; registry?: AgentRegistry; llm?: LlmServerSettings }) {
    this.#db = d.db;
    this.#odb = orchestratorDb(d.db);
    this.#boss = d.boss;
    this.#inboxes = d.inboxes;
    this.#registry = d.registry ?? {};
    this.#llm = d.llm;
  }

  /** The local engine, told about pauses so its cache does not outlive them. */
  attach(engine: CampaignEngine): void {
    this.#engine = engine;
  }

  async create(p: Principal, input: unknown, o: CreateCampaignOptions = {}): Promise<{ campaign: CampaignView; created: boolean }> {
    if (o.clientId) {
      const existing = await this.#odb.selectFrom('campaigns').select('id').where('client_id', '=', o.clientId).executeTakeFirst();
      if (existing) return { campaign: await this.get(p, existing.id), created: false };
    }
    const parsed = CampaignSpec.safeParse(input);
    if (!parsed.success) throw invalidSpec(parsed.error.issues);
    const spec = parsed.data;
    // A token that may not send (a draft-only token: drafts:write without messages:send) gets a
    // campaign whose every step waits for someone who can send to approve it.
    if (!hasScope(p, 'messages:send')) {
      spec.approval = 'required';
      for (const step of spec.steps) step.approval = 'required';
    }
    const extra = (o.leads ?? []).map((l, i) => {
      const r = Lead.safeParse(l);
      if (!r.success) throw invalidSpec(r.error.issues.map((x) => ({ ...x, path: ['leads', spec.leads.length + i, ...x.path] })));
      return r.data;
    });
    const leads = dedupe([...spec.leads, ...extra]);
    // An unknown implementation name, or "llm" with no model configured, is refused now, not at the first lead.
    resolveAgents(spec.agents, this.#registry, { spec: spec.llm, server: this.#llm });
    // A model endpoint of the campaign's own (llm.base_url) that the SSRF guard refuses is refused now too.
    if (Object.values(spec.agents).includes(LLM_AGENT)) {
      const llm = resolveLlmSettings(spec.llm, this.#llm);
      if (llm.egress) await checkLlmEndpoint(llm.baseUrl, llm.egress);
    }
    const senders = await this.#senders(p, spec);
    const now = Date.now();
    const clock: CampaignClock = { scale: spec.clock?.scale ?? 1, originReal: now, originSim: spec.clock?.start ? Date.parse(spec.clock.start) : now };
    const id = newId('cmp');
    const { leads: _l, ...stored } = spec;
    try {
      await this.#odb.transaction().execute(async (trx) => {
        await trx.insertInto('campaigns').values({
          id, name: spec.name, status: 'running', spec: JSON.stringify(stored), senders: JSON.stringify(senders), clock: JSON.stringify(clock),
          client_id: o.clientId ?? null, token_id: p.tokenId, created_at: new Date(now), updated_at: new Date(now), completed_at: null,
        }).execute();
        await ensureRouterCursor(trx as unknown as Kysely<Database>);
        await appendEvents(trx as unknown as Kysely<Database>, [{ type: 'campaign.created', inbox_id: senders[0].inbox_id, data: { campaign_id: id, name: spec.name, leads: leads.length, steps: spec.steps.length } }]);
        await this.#insertLeads(trx, id, spec, leads);
      });
    } catch (err) {
      if (o.clientId && /campaigns_client_id|unique/i.test(String((err as Error).message))) {
        const existing = await this.#odb.selectFrom('campaigns').select('id').where('client_id', '=', o.clientId).executeTakeFirst();
        if (existing) return { campaign: await this.get(p, existing.id), created: false };
      }
      throw err;
    }
    return { campaign: await this.get(p, id), created: true };
  }

  /** Adds leads to a running campaign; addresses already in it are skipped and reported. */
  async addLeads(p: Principal, campaignId: string, input: LeadInput[]): Promise<{ added: number; skipped: { email: string; reason: string }[] }> {
    const row = await this.#visible(p, campaignId);
    if (row.status === 'completed' || row.status === 'cancelled') throw new MailroomError('conflict', `campaign ${campaignId} is ${row.status}`);
    const leads: Lead[] = [];
    for (const [i, l] of input.entries()) {
      const r = Lead.safeParse(l);
      if (!r.success) throw invalidSpec(r.error.issues.map((x) => ({ ...x, path: ['leads', i, ...x.path] })));
      leads.push(r.data);
    }
    const unique = dedupe(leads);
    const keys = unique.map((l) => l.email.toLowerCase());
    const existing = new Set(keys.length ? (await this.#odb.selectFrom('campaign_leads').select('email_key').where('campaign_id', '=', campaignId).where('email_key', 'in', keys).execute()).map((r) => r.email_key) : []);
    const fresh = unique.filter((l) => !existing.has(l.email.toLowerCase()));
    await this.#odb.transaction().execute(async (trx) => {
      await this.#insertLeads(trx, campaignId, row.spec as unknown as CampaignSpec, fresh, row.status !== 'running');
      if (row.status === 'completed') await trx.updateTable('campaigns').set({ status: 'running', completed_at: null, updated_at: new Date() }).where('id', '=', campaignId).execute();
    });
    return {
      added: fresh.length,
      skipped: [
        ...leads.filter((l) => !unique.includes(l)).map((l) => ({ email: l.email, reason: 'listed twice' })),
        ...unique.filter((l) => existing.has(l.email.toLowerCase())).map((l) => ({ email: l.email, reason: 'already in the campaign' })),
      ],
    };
  }

  async #insertLeads(trx: Db, campaignId: string, spec: CampaignSpec, leads: Lead[], paused = false): Promise<void> {
    const now = new Date();
    for (let i = 0; i < leads.length; i += 500) {
      const chunk = leads.slice(i, i + 500);
      const leadRows = chunk.map((l) => {
        const tz = leadTimeZone(l, spec.timezone);
        return {
          id: newId('led'), campaign_id: campaignId, email: l.email, email_key: l.email.toLowerCase(), domain: domainOf(l.email),
          data: JSON.stringify(l), timezone: tz.zone, timezone_source: tz.source, created_at: now,
        };
      });
      await trx.insertInto('campaign_leads').values(leadRows).execute();
      const runs = leadRows.map((l) => ({
        id: newId('run'), campaign_id: campaignId, lead_id: l.id, trace_id: newId('trc'),
        status: (paused ? 'paused' : 'pending') as RunRow['status'], stage: 'research' as const, step: 0,
        inbox_id: null, thread_id: null, last_message_id: null, notes: null, draft: null, send_at: null, ooo_until: null,
        outcome: null, reply_class: null, detail: null, last_error: null, job_id: paused ? null : randomUUID(), created_at: now, updated_at: now, finished_at: null,
      }));
      await trx.insertInto('campaign_runs').values(runs).execute();
      if (!paused) await queueRunJobs(trx as unknown as Kysely<Database>, this.#boss, runs.map((r) => ({ runId: r.id, jobId: r.job_id!, queue: queueFor(spec.pattern, 'research') })));
    }
  }

  /** Each sender as an inbox the caller may send from: an id (inb_…) or an address. */
  async #senders(p: Principal, spec: CampaignSpec): Promise<SenderRef[]> {
    const out: SenderRef[] = [];
    for (const [i, s] of spec.senders.entries()) {
      const byAddress = s.inbox.includes('@');
      const row = await this.#db.selectFrom('inboxes').select(['id', 'address'])
        .where(byAddress ? sql`lower(address)` : sql`id`, '=', byAddress ? s.inbox.toLowerCase() : s.inbox)
        .where('deleted_at', 'is', null).executeTakeFirst();
      if (!row || !canSeeInbox(p, row.id)) throw new MailroomError('invalid_request', `senders.${i}.inbox: no inbox ${s.inbox} that this token can send from`, { details: [{ path: `senders.${i}.inbox`, message: 'unknown inbox' }] });
      if (out.some((o) => o.inbox_id === row.id)) throw new MailroomError('invalid_request', `senders.${i}.inbox: ${s.inbox} is listed twice`);
      out.push({ inbox_id: row.id, address: row.address, daily_cap: s.daily_cap });
    }
    return out;
  }

  async #visible(p: Principal, id: string): Promise<CampaignRow> {
    const row = await getCampaign(this.#db, id);
    if (!row || !(row.senders as SenderRef[]).every((s) => canSeeInbox(p, s.inbox_id))) throw notFound('campaign');
    return row;
  }

  async get(p: Principal, id: string): Promise<CampaignView> {
    const row = await this.#visible(p, id);
    return this.#view(row);
  }

  async #view(row: CampaignRow): Promise<CampaignView> {
    const spec = row.spec as unknown as CampaignSpec;
    const clock = row.clock as CampaignClock;
    const steps = Math.min(spec.steps.length, spec.stop?.max_steps ?? spec.steps.length);
    return {
      id: row.id, name: row.name, status: row.status, senders: row.senders as SenderRef[], steps,
      clock: { scale: clock.scale, now: new Date(clock.originSim + (Date.now() - clock.originReal) * clock.scale).toISOString() },
      client_id: row.client_id, created_at: iso(row.created_at)!, updated_at: iso(row.updated_at)!, completed_at: iso(row.completed_at),
      funnel: await funnel(this.#db, row.id, steps),
      spec: row.spec as Record<string, unknown>,
    };
  }

  async list(p: Principal, page: PageRequest): Promise<Page<CampaignView>> {
    const limit = clampLimit(page.limit);
    const after = decodeCursor(page.cursor);
    // Visibility is per sender list, so filter after reading; a restricted token pages a little slower.
    const out: CampaignRow[] = [];
    let cursor = after;
    for (;;) {
      let q = this.#odb.selectFrom('campaigns').selectAll().orderBy('id', 'desc').limit(200);
      if (cursor) q = q.where('id', '<', cursor);
      const rows = await q.execute();
      out.push(...rows.filter((r) => (r.senders as SenderRef[]).every((s) => canSeeInbox(p, s.inbox_id))));
      if (rows.length < 200 || out.length > limit) break;
      cursor = rows[rows.length - 1].id;
    }
    const views = await Promise.all(out.slice(0, limit + 1).map((r) => this.#view(r)));
    return toPage(views, limit, (v) => v);
  }

  async setStatus(p: Principal, id: string, to: 'paused' | 'running'): Promise<CampaignView> {
    const row = await this.#visible(p, id);
    if (row.status === to) return this.#view(row);
    if (row.status === 'completed' || row.status === 'cancelled') throw new MailroomError('conflict', `campaign ${id} is ${row.status}`);
    await this.#odb.transaction().execute(async (trx) => {
      await trx.updateTable('campaigns').set({ status: to, updated_at: new Date() }).where('id', '=', id).execute();
      if (to === 'running') {
        // Every run that was waiting on the pause gets a job again: each looks at where it stands.
        const runs = await trx.selectFrom('campaign_runs').select(['id', 'stage']).where('campaign_id', '=', id).where('status', 'in', [...LIVE, 'paused']).execute();
        const pattern = (row.spec as unknown as CampaignSpec).pattern;
        const jobs = runs.map((r) => ({ runId: r.id, jobId: randomUUID(), queue: queueFor(pattern, r.stage) }));
        for (const j of jobs) {
          await trx.updateTable('campaign_runs').set({ job_id: j.jobId, version: sql`version + 1`, updated_at: new Date(), status: sql`CASE WHEN status = 'paused' THEN 'pending' ELSE status END` as never })
            .where('id', '=', j.runId).execute();
        }
        await queueRunJobs(trx as unknown as Kysely<Database>, this.#boss, jobs);
      }
      await appendEvents(trx as unknown as Kysely<Database>, [{ type: to === 'paused' ? 'campaign.paused' : 'campaign.resumed', inbox_id: (row.senders as SenderRef[])[0]?.inbox_id, data: { campaign_id: id } }]);
    });
    this.#engine?.forget(id);
    return this.get(p, id);
  }

  /**
   * Marks campaigns whose runs have all ended as completed (with an event); returns how many. The
   * check and the update are two statements, so a run retried in between can leave a completed
   * campaign with a live run: the first statement reopens such campaigns (runs never wait on it).
   */
  async completeFinished(): Promise<number> {
    await this.#odb.updateTable('campaigns').set({ status: 'running', completed_at: null, updated_at: new Date() })
      .where('status', '=', 'completed')
      .where(({ exists, selectFrom }) => exists(selectFrom('campaign_runs as r').select('r.id').whereRef('r.campaign_id', '=', 'campaigns.id').where('r.status', 'in', LIVE)))
      .execute();
    const open = await this.#odb.selectFrom('campaigns as c').select(['c.id', 'c.senders'])
      .where('c.status', '=', 'running')
      // A campaign without leads yet is waiting for them, not done.
      .where(({ exists, selectFrom }) => exists(selectFrom('campaign_runs as r').select('r.id').whereRef('r.campaign_id', '=', 'c.id')))
      .where(({ not, exists, selectFrom }) => not(exists(selectFrom('campaign_runs as r').select('r.id').whereRef('r.campaign_id', '=', 'c.id').where('r.status', 'not in', ENDED))))
      .execute();
    for (const c of open) {
      await this.#odb.transaction().execute(async (trx) => {
        const done = await trx.updateTable('campaigns').set({ status: 'completed', completed_at: new Date(), updated_at: new Date() })
          .where('id', '=', c.id).where('status', '=', 'running').returning('id').executeTakeFirst();
        if (done) await appendEvents(trx as unknown as Kysely<Database>, [{ type: 'campaign.completed', inbox_id: (c.senders as SenderRef[])[0]?.inbox_id, data: { campaign_id: c.id } }]);
      });
    }
    return open.length;
  }

  // ---- runs ----

  async listRuns(p: Principal, f: PageRequest & { campaign_id?: string; status?: RunRow['status'] }): Promise<Page<RunView>> {
    const limit = clampLimit(f.limit);
    const after = decodeCursor(f.cursor);
    if (f.campaign_id) await this.#visible(p, f.campaign_id);
    let q = this.#odb.selectFrom('campaign_runs as r').innerJoin('campaign_leads as l', 'l.id', 'r.lead_id').innerJoin('campaigns as c', 'c.id', 'r.campaign_id')
      .selectAll('r').select(['l.email', 'l.timezone', 'l.timezone_source', 'l.data as lead_data', 'c.senders'])
      .orderBy('r.id', 'desc').limit(limit + 1);
    if (f.campaign_id) q = q.where('r.campaign_id', '=', f.campaign_id);
    if (f.status) q = q.where('r.status', '=', f.status);
    if (after) q = q.where('r.id', '<', after);
    if (p.inboxIds !== null && !f.campaign_id) {
      // Only campaigns every sender of which is visible: filter rows (a restricted token's lists are short).
      const rows = (await q.limit(1000).execute()).filter((r) => (r.senders as SenderRef[]).every((s) => canSeeInbox(p, s.inbox_id)));
      return toPage(rows.slice(0, limit + 1), limit, (r) => this.#runView(r));
    }
    return toPage(await q.execute(), limit, (r) => this.#runView(r));
  }

  async getRun(p: Principal, id: string): Promise<RunView> {
    const row = await this.#odb.selectFrom('campaign_runs as r').innerJoin('campaign_leads as l', 'l.id', 'r.lead_id')
      .selectAll('r').select(['l.email', 'l.timezone', 'l.timezone_source', 'l.data as lead_data']).where('r.id', '=', id).executeTakeFirst();
    if (!row) throw notFound('run');
    await this.#visible(p, row.campaign_id).catch(() => { throw notFound('run'); });
    return this.#runView(row);
  }

  #runView(r: RunRow & Pick<LeadRow, 'email' | 'timezone' | 'timezone_source'> & { lead_data: unknown }): RunView {
    return {
      id: r.id, campaign_id: r.campaign_id, trace_id: r.trace_id,
      lead: { id: r.lead_id, email: r.email, timezone: r.timezone, timezone_source: r.timezone_source, data: r.lead_data as Record<string, unknown> },
      status: r.status, stage: r.stage, steps_sent: r.step, inbox_id: r.inbox_id, thread_id: r.thread_id,
      send_at: iso(r.send_at), out_of_office_until: r.ooo_until, outcome: r.outcome, reply_class: r.reply_class, detail: r.detail,
      attempts: r.attempts, last_error: r.last_error, created_at: iso(r.created_at)!, updated_at: iso(r.updated_at)!, finished_at: iso(r.finished_at),
    };
  }

  /** A run's timeline: its agent calls, handoffs and decisions, and the events of its trace (sends, bounces, replies). */
  async trace(p: Principal, id: string): Promise<{ run: RunView; timeline: TraceEntry[] }> {
    const run = await this.getRun(p, id);
    const spans = await spansOf(this.#db, id);
    const events = await eventsOfTrace(this.#db, run.trace_id);
    const timeline: TraceEntry[] = [
      ...spans.map((s) => ({
        at: iso(s.started_at)!, sim_at: iso(s.sim_at), kind: s.kind, name: s.name, status: s.status, duration_ms: s.duration_ms,
        input: s.input ?? undefined, output: s.output ?? undefined, error: s.error,
      })),
      ...events.map((e) => ({ at: iso(e.created_at)!, sim_at: null, kind: 'event', name: e.type, status: 'ok', duration_ms: 0, output: e.data, message_id: e.message_id })),
    ].sort((a, b) => a.at.localeCompare(b.at));
    return { run, timeline };
  }

  /** Dead-lettered run → active again, from the stage it failed in, with its attempts reset. */
  async retry(p: Principal, id: string): Promise<RunView> {
    await this.getRun(p, id);
    const jobId = randomUUID();
    const retried = await this.#odb.transaction().execute(async (trx) => {
      const row = await trx.updateTable('campaign_runs').set({ status: 'active', attempts: 0, last_error: null, detail: null, outcome: null, finished_at: null, job_id: jobId, version: sql`version + 1`, updated_at: new Date() })
        .where('id', '=', id).where('status', '=', 'dead').returningAll().executeTakeFirst();
      if (!row) return null;
      // A dead run whose stage was already "finished" (it failed while ending) starts over at research.
      if (row.stage === 'finished') await trx.updateTable('campaign_runs').set({ stage: 'research' }).where('id', '=', id).execute();
      const campaign = await trx.selectFrom('campaigns').select('spec').where('id', '=', row.campaign_id).executeTakeFirstOrThrow();
      const queue = queueFor((campaign.spec as unknown as CampaignSpec).pattern, row.stage === 'finished' ? 'research' : row.stage);
      await queueRunJobs(trx as unknown as Kysely<Database>, this.#boss, [{ runId: id, jobId, queue }]);
      await appendEvents(trx as unknown as Kysely<Database>, [{ type: 'run.retried', inbox_id: row.inbox_id, thread_id: row.thread_id, trace_id: row.trace_id, data: { run_id: id, campaign_id: row.campaign_id } }]);
      await trx.updateTable('campaigns').set({ status: 'running', completed_at: null }).where('id', '=', row.campaign_id).where('status', '=', 'completed').execute();
      return row;
    });
    const run = await this.getRun(p, id);
    // Already going again (a retried request whose first answer was lost): the same answer, not a conflict.
    if (!retried && !(LIVE as string[]).includes(run.status)) throw new MailroomError('conflict', `run ${id} is ${run.status}, not dead-lettered`);
    return run;
  }

  async runRow(id: string): Promise<RunRow | undefined> {
    return getRun(this.#db, id);
  }
}

function dedupe(leads: Lead[]): Lead[] {
  const seen = new Set<string>();
  return leads.filter((l) => {
    const k = l.email.toLowerCase();
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function invalidSpec(issues: { path: PropertyKey[]; message: string }[]): MailroomError {
  const details = issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message }));
  return new MailroomError('invalid_request', `invalid campaign: ${details.slice(0, 10).map((d) => (d.path ? `${d.path}: ${d.message}` : d.message)).join('; ')}`, { details });
}
