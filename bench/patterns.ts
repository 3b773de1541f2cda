/**
 * `npm run bench:patterns` — the three coordination patterns of a campaign (issue 7: `pattern:
 * centralized | decentralized | hybrid`) side by side, in one run, on the same machine:
 *
 *   - for each pattern in turn, TWO `mailroom serve` processes on one fresh PostgreSQL schema (the
 *     way bench/campaign.ts starts one), both relaying to a sink in this process;
 *   - the agents are bench/slow-agents.ts (MAILROOM_AGENTS_MODULE): the built-in agents behind a
 *     fixed wait per role (default research 200, personalize 400, sequence 20, respond 100 ms);
 *   - the centralized orchestrator's budget is K decisions per second per process
 *     (MAILROOM_ORCHESTRATOR_DECISIONS_PER_SECOND, --decisions-per-second, default 50);
 *   - one campaign of N silent leads (default 2,000), 1 step (--steps 2 for a follow-up), built from
 *     the demo's outreach campaign (src/orchestrator/demo/scenario.ts) as bench/campaign.ts builds
 *     it: every day all day, no delay, no final wait, campaign clock ×1,000,000; the hybrid pattern
 *     with `checkpoints: { stage_seconds: 10 }` (--stage-seconds) so that its watcher steps in
 *     within the run;
 *   - when ~30 % of the leads' first messages reached the sink (--kill-at), the second process is
 *     killed with SIGKILL, and the bench measures how long until every run that was mid-stage on it
 *     made progress again, and until the sink's first-send rate is back to half its pre-kill rate.
 *
 * Measured per pattern: throughput (leads to first send per second, messages per second), time to
 * first send (campaign creation → each lead's first message at the sink) p50/p95, the recovery
 * figures, and checks (every lead's every step at the sink, duplicates within the transport bound,
 * every run ended). See bench/README.md ("Patterns") and docs/patterns.md for how to read it.
 */
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { hostname } from 'node:os';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { SMTPServer } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { bossSchemaFor } from '../src/jobs/boss.ts';
import { outreachCampaign, scenarioProspects } from '../src/orchestrator/demo/scenario.ts';
import type { RoleName } from '../src/orchestrator/roles.ts';
import {
  ADMIN_TOKEN, addCleanup, cleanEnv, type Column, commCpuWithChildren, DEFAULT_DATABASE_URL, fixed, int0, intOption, loadAverage, machineSummary,
  type MailroomCluster, parseCommandLine, pct, percentile, printTableHeader, printTableRow, processCpuSeconds, ROOT, runBench, say,
  sayMailroomLog, sleep, startMailroomCluster,
} from './common.ts';
import { parseLatency } from './slow-agents.ts';

const AGENTS_MODULE = path.join(ROOT, 'bench', 'slow-agents.ts');
const ROLES: RoleName[] = ['research', 'personalize', 'sequence', 'respond'];
const PATTERNS = ['centralized', 'decentralized', 'hybrid'] as const;
type Pattern = (typeof PATTERNS)[number];
const PROCESSES = 2;
/** Window over which the first-send rate is measured after the kill (and the pre-kill rate at most). */
const RATE_WINDOW_MS = 5_000;
const PRE_KILL_WINDOW_MS = 30_000;

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

const USAGE = `usage: node bench/patterns.ts [options]   (every option also as an environment variable)
  --leads N                 leads in the campaign                       (BENCH_LEADS, default 2000)
  --steps S                 steps of the sequence, 1 or 2               (BENCH_STEPS, default 1)
  --patterns LIST           which patterns, in this order               (BENCH_PATTERNS, default centralized,decentralized,hybrid)
  --latency SPEC            simulated agent latency in ms per role      (BENCH_AGENT_LATENCY,
                            default research=200,personalize=400,sequence=20,respond=100)
  --decisions-per-second K  the centralized orchestrator's budget, per process
                            (MAILROOM_ORCHESTRATOR_DECISIONS_PER_SECOND) (BENCH_DECISIONS_PER_SECOND, default 50)
  --stage-seconds S         hybrid: checkpoints.stage_seconds            (BENCH_STAGE_SECONDS, default 10)
  --kill-at F               kill -9 the second process once this share of the leads' first
                            messages reached the sink; 0 = no kill      (BENCH_KILL_AT, default 0.3)
  --settle S                seconds after the kill after which a claimed job still active is the
                            dead process's                              (BENCH_SETTLE, default 5)
  --trace-sample K          runs whose traces are read (workers, spans)  (BENCH_TRACE_SAMPLE, default 100)
  --timeout S               give up on one pattern's campaign after S s  (BENCH_TIMEOUT, default 420)
  --database-url U          PostgreSQL                                  (BENCH_DATABASE_URL, default ${DEFAULT_DATABASE_URL})
  --omit-pattern            send no pattern/checkpoints fields (an engine without patterns:
                            every "pattern" then runs the same engine; for testing the harness)
  BENCH_MAILROOM_NODE_OPTIONS   NODE_OPTIONS for the Mailroom children only (experiments)`;

interface Options {
  leads: number;
  steps: number;
  patterns: Pattern[];
  latency: Record<RoleName, number>;
  decisionsPerSecond: number;
  stageSeconds: number;
  killAt: number;
  settleMs: number;
  traceSample: number;
  timeoutMs: number;
  databaseUrl: string;
  omitPattern: boolean;
}

function parseOptions(): Options {
  const values = parseCommandLine(USAGE, {
    leads: { type: 'string' },
    steps: { type: 'string' },
    patterns: { type: 'string' },
    latency: { type: 'string' },
    'decisions-per-second': { type: 'string' },
    'stage-seconds': { type: 'string' },
    'kill-at': { type: 'string' },
    settle: { type: 'string' },
    'trace-sample': { type: 'string' },
    timeout: { type: 'string' },
    'database-url': { type: 'string' },
    'omit-pattern': { type: 'boolean' },
  });
  const env = process.env;
  const patterns = (values.patterns ?? env.BENCH_PATTERNS ?? PATTERNS.join(',')).split(',').map((s) => s.trim()).filter(Boolean).map((p) => {
    if (!(PATTERNS as readonly string[]).includes(p)) throw new Error(`unknown pattern "${p}" (${PATTERNS.join(', ')})`);
    return p as Pattern;
  });
  if (!patterns.length) throw new Error('--patterns: none given');
  const killAt = Number(values['kill-at'] ?? env.BENCH_KILL_AT ?? 0.3);
  if (!(killAt >= 0 && killAt < 1)) throw new Error(`--kill-at must be a share from 0 (no kill) to below 1, got ${killAt}`);
  const steps = intOption('steps', values.steps ?? env.BENCH_STEPS, 1, 1);
  if (steps > 2) throw new Error('--steps: 1 or 2');
  return {
    leads: intOption('leads', values.leads ?? env.BENCH_LEADS, 2000, 10),
    steps,
    patterns,
    latency: parseLatency(values.latency ?? env.BENCH_AGENT_LATENCY),
    decisionsPerSecond: intOption('decisions-per-second', values['decisions-per-second'] ?? env.BENCH_DECISIONS_PER_SECOND, 50, 1),
    stageSeconds: intOption('stage-seconds', values['stage-seconds'] ?? env.BENCH_STAGE_SECONDS, 10, 1),
    killAt,
    settleMs: intOption('settle', values.settle ?? env.BENCH_SETTLE, 5, 1) * 1000,
    traceSample: intOption('trace-sample', values['trace-sample'] ?? env.BENCH_TRACE_SAMPLE, 100, 0),
    timeoutMs: intOption('timeout', values.timeout ?? env.BENCH_TIMEOUT, 420, 10) * 1000,
    databaseUrl: values['database-url'] ?? env.BENCH_DATABASE_URL ?? DEFAULT_DATABASE_URL,
    omitPattern: Boolean(values['omit-pattern']) || ['1', 'true', 'yes'].includes((env.BENCH_OMIT_PATTERN ?? '').toLowerCase()),
  };
}

const latencySpec = (l: Record<RoleName, number>) => ROLES.map((r) => `${r}=${l[r]}`).join(',');

// ---------------------------------------------------------------------------------------------
// The sink: every campaign message, counted per lead and step, with the time of each first arrival
// ---------------------------------------------------------------------------------------------

interface Tally {
  messages: number;
  /** Messages whose (lead, step) had arrived before. */
  duplicates: number;
  perStep: number[];
  /** lead id → how many times each step (index step - 1) arrived. */
  leads: Map<string, number[]>;
  /** Epoch ms of each lead's first step-1 message, in arrival order. */
  firstSends: number[];
  /** Epoch ms of every message, in arrival order. */
  arrivals: number[];
}

interface Sink {
  port: number;
  tally(campaignId: string): Tally;
  /** Messages without campaign headers (none expected). */
  other(): number;
  /** Resolves once `campaignId` has `count` distinct (lead, step) messages, or after `timeoutMs` (check the tally). */
  waitFor(campaignId: string, count: number, timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

const epochNow = () => performance.timeOrigin + performance.now();

async function startSink(steps: number): Promise<Sink> {
  // smtp-server's 100 ms early-talker pause before the greeting, removed as in bench/sink.ts and
  // bench/campaign.ts: a pooled relay client reconnects every 100 messages, a real relay greets at once.
  const proto = SMTPConnection.prototype as unknown as { init(): void; _setListeners(cb: () => void): void; connectionReady(): void };
  proto.init = function init(this: typeof proto) {
    this._setListeners(() => this.connectionReady());
  };
  const tallies = new Map<string, Tally>();
  const waiters = new Set<() => void>();
  let other = 0;
  const tally = (id: string) => {
    let t = tallies.get(id);
    if (!t) tallies.set(id, (t = { messages: 0, duplicates: 0, perStep: Array(steps).fill(0), leads: new Map(), firstSends: [], arrivals: [] }));
    return t;
  };
  const count = (header: string) => {
    const at = epochNow();
    const h = (name: string) => new RegExp(`^${name}:[ \\t]*(\\S+)`, 'im').exec(header)?.[1];
    const campaign = h('X-Mailroom-Campaign');
    const lead = h('X-Mailroom-Lead');
    const step = Number(h('X-Mailroom-Step'));
    if (!campaign || !lead || !(step >= 1 && step <= steps)) { other++; return; }
    const t = tally(campaign);
    t.messages++;
    t.arrivals.push(at);
    let s = t.leads.get(lead);
    if (!s) t.leads.set(lead, (s = Array(steps).fill(0)));
    if (s[step - 1]) t.duplicates++;
    else if (step === 1) t.firstSends.push(at);
    s[step - 1]++;
    t.perStep[step - 1]++;
    for (const w of [...waiters]) w();
  };
  const server = new SMTPServer({
    name: 'patterns-sink.bench.test', banner: 'bench patterns sink (discards)', size: 10 * 1024 * 1024,
    authOptional: true, disabledCommands: ['AUTH'], hideSTARTTLS: true, disableReverseLookup: true, maxClients: 1000, logger: false,
    onData(stream, _session, cb) {
      let header = '';
      let done = false;
      stream.on('data', (chunk: Buffer) => {
        if (done) return;
        header += chunk.toString('latin1');
        const end = header.indexOf('\r\n\r\n');
        if (end >= 0) { header = header.slice(0, end); done = true; } else if (header.length > 256 * 1024) done = true;
      });
      stream.on('error', (err) => cb(err));
      stream.on('end', () => { count(header); cb(null, '2.0.0 Ok: counted and discarded'); });
    },
  });
  server.on('error', () => {});
  server.listen(0, '127.0.0.1');
  await once(server.server, 'listening');
  const stop = () => new Promise<void>((resolve) => server.close(() => resolve()));
  addCleanup(stop);
  return {
    port: (server.server.address() as AddressInfo).port,
    tally,
    other: () => other,
    waitFor: (campaignId, n, timeoutMs) => new Promise<void>((resolve) => {
      const finish = () => { waiters.delete(check); clearTimeout(timer); resolve(); };
      const check = () => { const t = tally(campaignId); if (t.messages - t.duplicates >= n) finish(); };
      const timer = setTimeout(finish, timeoutMs);
      waiters.add(check);
      check();
    }),
    stop,
  };
}

// ---------------------------------------------------------------------------------------------
// The API and the store
// ---------------------------------------------------------------------------------------------

interface Api {
  json<T = any>(method: string, p: string, body?: unknown): Promise<T>;
}

function apiClient(base: string): Api {
  return {
    async json(method, p, body) {
      const res = await fetch(base + p, {
        method,
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`${method} ${p}: HTTP ${res.status} ${text.slice(0, 600)}`);
      return (text ? JSON.parse(text) : null) as never;
    },
  };
}

/** Direct reads of the shared schema (runs, spans, events) and of pg-boss's job table: what the API does not show. */
function storeReader(pool: pg.Pool, schema: string) {
  const s = `"${schema}"`;
  const b = `"${bossSchemaFor(schema)}"`;
  const q = async <T>(text: string, params: unknown[] = []) => (await pool.query(text, params)).rows as T[];
  return {
    /** Jobs claimed right now on the campaign queues (campaign-*) and the send queue. */
    /**
     * Jobs claimed right now on the campaign queues (campaign-*) and the send queue; `holds`: the job
     * is the one its run names (campaign_runs.job_id) and the run is live, i.e. the run is mid-stage
     * in it (a job whose run already moved on is only finishing up).
     */
    activeJobs: () => q<{ id: string; name: string; run_id: string | null; message_id: string | null; started_on: Date; holds: boolean }>(
      `SELECT j.id::text, j.name, j.data->>'run_id' AS run_id, j.data->>'message_id' AS message_id, j.started_on,
              coalesce(r.job_id = j.id::text AND r.status IN ('pending', 'active', 'waiting'), false) AS holds
         FROM ${b}.job j LEFT JOIN ${s}.campaign_runs r ON r.id = j.data->>'run_id'
        WHERE j.state = 'active' AND (j.name LIKE 'campaign-%' OR j.name = 'outbound-send')`),
    jobStates: (ids: string[]) => q<{ id: string; state: string; started_on: Date | null; completed_on: Date | null }>(
      `SELECT id::text, state, started_on, completed_on FROM ${b}.job WHERE id = ANY($1::uuid[])`, [ids]),
    /** Runs of the campaign still active whose latest agent span was made by `worker` (host:pid). */
    activeRunsLastOn: (campaignId: string, worker: string) => q<{ id: string }>(
      `SELECT r.id FROM ${s}.campaign_runs r
         JOIN LATERAL (SELECT input->>'worker' AS w FROM ${s}.campaign_spans sp WHERE sp.run_id = r.id AND sp.kind = 'agent' ORDER BY sp.started_at DESC LIMIT 1) l ON true
        WHERE r.campaign_id = $1 AND r.status = 'active' AND l.w = $2`, [campaignId, worker]),
    /**
     * For each run: when it next made progress after `after` (epoch ms): the end of its first span
     * ending after then that is work on the run (an agent call, a handoff, a send, a decision that is
     * not a re-queue), or its end.
     */
    progressAfter: (runIds: string[], after: number) => q<{ id: string; status: string; progressed_at: Date | null; finished_at: Date | null }>(
      `SELECT r.id, r.status, r.finished_at,
              (SELECT min(sp.started_at + sp.duration_ms * interval '1 millisecond') FROM ${s}.campaign_spans sp
                WHERE sp.run_id = r.id AND sp.started_at + sp.duration_ms * interval '1 millisecond' > $2
                  AND NOT (sp.kind = 'decision' AND sp.name ~* '(rerout|re-?queue|watcher|stalled|checkpoint)')) AS progressed_at
         FROM ${s}.campaign_runs r WHERE r.id = ANY($1)`, [runIds, new Date(after)]),
    eventCounts: () => q<{ type: string; n: string }>(
      `SELECT type, count(*)::text AS n FROM ${s}.events WHERE type IN ('run.rerouted', 'campaign.paused', 'campaign.resumed', 'run.dead', 'run.retried') GROUP BY type`),
    pausedReasons: () => q<{ data: unknown }>(`SELECT data FROM ${s}.events WHERE type = 'campaign.paused' ORDER BY created_at LIMIT 3`),
    /** Spans of the campaign by kind and name pattern: decisions of the orchestrator, agent calls per worker. */
    spanStats: (campaignId: string) => q<{ kind: string; name: string; worker: string | null; n: string }>(
      `SELECT sp.kind, CASE WHEN sp.kind = 'decision' AND sp.name LIKE 'orchestrator:%' THEN 'orchestrator' WHEN sp.kind = 'decision' THEN 'other' ELSE sp.name END AS name,
              sp.input->>'worker' AS worker, count(*)::text AS n
         FROM ${s}.campaign_spans sp JOIN ${s}.campaign_runs r ON r.id = sp.run_id
        WHERE r.campaign_id = $1 GROUP BY 1, 2, 3`, [campaignId]),
    /** When each orchestrator decision was made (epoch ms, ascending), for the observed decision rate. */
    decisionTimes: async (campaignId: string) => (await q<{ at: string }>(
      `SELECT (extract(epoch FROM sp.started_at) * 1000)::float8::text AS at
         FROM ${s}.campaign_spans sp JOIN ${s}.campaign_runs r ON r.id = sp.run_id
        WHERE r.campaign_id = $1 AND sp.kind = 'decision' AND sp.name LIKE 'orchestrator:%' ORDER BY sp.started_at`, [campaignId])).map((r) => Number(r.at)),
  };
}
type Store = ReturnType<typeof storeReader>;

// ---------------------------------------------------------------------------------------------
// One pattern
// ---------------------------------------------------------------------------------------------

interface KillInfo {
  at: number;
  pid: number;
  worker: string;
  /** Jobs claimed on the campaign and send queues just after the kill (either process). */
  activeAtKill: number;
  /** Of those, still claimed and unchanged `settle` s later: the dead process's. */
  orphanRuns: string[];
  /** Dead-process jobs whose run had already moved on (committed, job not yet marked completed). */
  staleOrphans: number;
  orphanJobsByQueue: Record<string, number>;
  orphanSends: number;
  orphanSendJobs: string[];
  /** Runs still active whose last agent span was the dead process's (a second, looser reading). */
  lastSpanRuns: string[];
  /** Sink first sends in the window before the kill, per second. */
  preRate: number;
  /** First sends reached the sink at the kill. */
  firstSendsAtKill: number;
}

interface Recovery {
  /** s from the kill until the last orphaned run progressed; NaN when one never did. */
  runsS: number;
  runsMedianS: number;
  notProgressed: number;
  lastSpanRunsS: number;
  /** s from the kill until the last send job the dead process had claimed was done (pg-boss completed_on); NaN if one was not. */
  sendsS: number;
  /** s from the kill until a RATE_WINDOW of first sends at ≥ half the pre-kill rate begins. */
  halfRateS: number;
  /** The lowest first-send rate over a RATE_WINDOW after the kill, as a share of the pre-kill rate. */
  dipShare: number;
  /** First sends per second with the survivor alone: from `settle` s after the kill to the tail (see below). */
  survivorRate: number;
  /** Epoch ms where the survivor-alone window ends (about only the stalled runs' leads left). */
  survivorEnd: number;
}

interface PatternResult {
  pattern: Pattern;
  ok: boolean;
  loadStart: string;
  loadEnd: string;
  n: number;
  completed: boolean;
  completeMs: number;
  /** ms from creation to the last lead's first message at the sink. */
  lastFirstMs: number;
  /** ms from creation to the last message at the sink. */
  lastMessageMs: number;
  messages: number;
  ttfs: Float64Array;
  preKillRate: number;
  kill: KillInfo | null;
  recovery: Recovery | null;
  rerouted: number;
  paused: number;
  duplicates: number;
  dupBound: number;
  decisions: number;
  decisionRate: number;
  decisionRateAlone: number;
  agentByWorker: Map<string, number>;
  cpu: { wallS: number; mailroom: number[]; postgres: number };
  checks: string[];
}

const sortedOf = (xs: number[]) => Float64Array.from(xs).sort();

/** First sends per second over [from, to) from ascending epoch-ms `times`. */
function rateIn(times: number[], from: number, to: number): number {
  let c = 0;
  for (const t of times) if (t >= from && t < to) c++;
  return to > from ? c / ((to - from) / 1000) : NaN;
}

async function runPattern(o: Options, pattern: Pattern, sink: Sink, pool: pg.Pool): Promise<PatternResult> {
  const n = o.leads;
  const loadStart = loadAverage();
  say(`  ${pattern} (load average ${loadStart})`);
  const t0 = performance.now();
  const cluster: MailroomCluster = await startMailroomCluster({
    count: PROCESSES, databaseUrl: o.databaseUrl, dataDirPrefix: 'mailroom-bench-patterns-',
    baseEnv: cleanEnv({ dropNodeOptions: true }),
    env: {
      MAILROOM_SMTP_RELAY_URL: `smtp://127.0.0.1:${sink.port}`,
      MAILROOM_DNS_SERVERS: '127.0.0.1:1',
      MAILROOM_AGENTS_MODULE: AGENTS_MODULE,
      MAILROOM_ORCHESTRATOR_DECISIONS_PER_SECOND: String(o.decisionsPerSecond),
      BENCH_AGENT_LATENCY: latencySpec(o.latency),
    },
    banner: /HTTP API\s+(http:\/\/\S+?:\d+)\b/,
  });
  const pids = cluster.members.map((m) => m.child.pid);
  const store = storeReader(pool, cluster.schema);
  const api = apiClient(cluster.members[0].banner[1]);
  const checks: string[] = [];
  let failedChecks = 0;
  const check = (ok: boolean, text: string) => { checks.push(`${ok ? 'ok  ' : 'FAIL'} ${text}`); if (!ok) failedChecks++; };
  try {
    say(`    ${PROCESSES} processes on schema ${cluster.schema} started in ${fixed((performance.now() - t0) / 1000, 1)} s (pids ${pids.join(', ')}; the API of the first is used)`);
    const inbox = await api.json<{ id: string; address: string }>('POST', '/v1/inboxes', { username: 'ada', display_name: 'Ada (bench)' });
    await api.json('POST', '/v1/limits', { scope: 'global', max: 10_000_000, window: 'minute' });
    const prospects = scenarioProspects({ leads: n, perCompany: 1, mix: { silent: 1 } });
    const base = outreachCampaign(prospects, {
      leads: n, senders: [inbox.address], dailyCap: 100_000, escalateTo: `owner@${inbox.address.split('@')[1]}`, scale: 1_000_000,
      anytime: true, name: `bench patterns ${pattern} ${n}`, agents: { research: 'slow', personalize: 'slow', sequence: 'slow', respond: 'slow' },
    });
    const spec: Record<string, unknown> = {
      ...base,
      steps: (base.steps ?? []).slice(0, o.steps),
      ...(o.omitPattern ? {} : { pattern, ...(pattern === 'hybrid' ? { checkpoints: { stage_seconds: o.stageSeconds } } : {}) }),
    };
    await sleep(1000); // let the start-up settle
    const cpu0 = { at: performance.now(), mailroom: pids.map((p) => processCpuSeconds(p)), postgres: commCpuWithChildren('postgres') };
    const cpuLast = [...cpu0.mailroom];

    // ---- The timed part: creation → every run ended, with a kill -9 on the way ----
    const startedAt = epochNow();
    const campaign = await api.json<{ id: string; status: string }>('POST', '/v1/campaigns', spec);
    const submitMs = epochNow() - startedAt;
    say(`    campaign ${campaign.id}: ${int0(n)} leads, ${o.steps} step(s), pattern ${o.omitPattern ? '(omitted)' : pattern}, created in ${fixed(submitMs / 1000, 1)} s`);
    const victim = cluster.members[PROCESSES - 1];
    const killTarget = Math.max(1, Math.ceil(o.killAt * n));
    let kill: KillInfo | null = null;
    let killSnapshot: Awaited<ReturnType<Store['activeJobs']>> = [];
    let attributed = false;
    let view: any;
    let lastSay = 0;
    let pausedSeen = false;
    for (;;) {
      pids.forEach((p, i) => { const c = processCpuSeconds(p); if (Number.isFinite(c)) cpuLast[i] = c; });
      const t = sink.tally(campaign.id);
      if (!kill && o.killAt > 0 && t.firstSends.length >= killTarget) {
        const at = epochNow();
        victim.child.proc.kill('SIGKILL');
        killSnapshot = await store.activeJobs();
        const lastSpanRuns = (await store.activeRunsLastOn(campaign.id, `${hostname()}:${victim.child.pid}`)).map((r) => r.id);
        const window = Math.min(PRE_KILL_WINDOW_MS, at - (t.firstSends[0] ?? startedAt));
        kill = {
          at, pid: victim.child.pid, worker: `${hostname()}:${victim.child.pid}`, activeAtKill: killSnapshot.length,
          orphanRuns: [], staleOrphans: 0, orphanJobsByQueue: {}, orphanSends: 0, orphanSendJobs: [], lastSpanRuns,
          preRate: rateIn(t.firstSends, at - window, at), firstSendsAtKill: t.firstSends.length,
        };
        say(`    … ${fixed((at - startedAt) / 1000, 1)} s: kill -9 of pid ${victim.child.pid} at ${int0(t.firstSends.length)} first sends ` +
          `(${fixed(kill.preRate, 1)}/s over the last ${fixed(window / 1000, 0)} s); ${killSnapshot.length} jobs claimed on the campaign and send queues; ` +
          `${lastSpanRuns.length} active runs whose last agent call was the killed process's`);
      }
      if (kill && !attributed && epochNow() >= kill.at + o.settleMs) {
        attributed = true;
        const now = new Map((await store.jobStates(killSnapshot.map((j) => j.id))).map((j) => [j.id, j]));
        const orphans = killSnapshot.filter((j) => {
          const s = now.get(j.id);
          return s && s.state === 'active' && s.started_on?.getTime() === j.started_on.getTime();
        });
        kill.orphanRuns = [...new Set(orphans.filter((j) => j.run_id && j.holds).map((j) => j.run_id!))];
        kill.staleOrphans = orphans.filter((j) => j.run_id && !j.holds).length;
        kill.orphanSendJobs = orphans.filter((j) => j.name === 'outbound-send').map((j) => j.id);
        kill.orphanSends = kill.orphanSendJobs.length;
        for (const j of orphans) kill.orphanJobsByQueue[j.name] = (kill.orphanJobsByQueue[j.name] ?? 0) + 1;
        say(`    … ${o.settleMs / 1000} s after the kill, ${orphans.length} of those jobs were still claimed and unchanged (the dead process's): ` +
          `${Object.entries(kill.orphanJobsByQueue).map(([q, c]) => `${q} ${c}`).join(', ') || 'none'}; runs mid-stage in them: ${kill.orphanRuns.length}` +
          `${kill.staleOrphans ? ` (${kill.staleOrphans} more jobs whose run had already moved on)` : ''}`);
      }
      view = await api.json('GET', `/v1/campaigns/${campaign.id}`);
      if (view.status === 'completed' && (!kill || attributed)) break;
      if (view.status === 'paused' && !pausedSeen) {
        pausedSeen = true;
        say(`    … the campaign was PAUSED: ${JSON.stringify((await store.pausedReasons()).map((r) => r.data))}`);
      }
      if (epochNow() - startedAt > o.timeoutMs) break;
      if (performance.now() - lastSay > 15_000) {
        const f = view.funnel;
        const ended = (f.status.done ?? 0) + (f.status.needs_human ?? 0) + (f.status.dead ?? 0);
        say(`    … ${fixed((epochNow() - startedAt) / 1000, 0)} s: sink ${int0(t.firstSends.length)} first sends, ${int0(t.messages)} messages; ` +
          `funnel sent ${f.sent_per_step.map(int0).join('/')}, ended ${int0(ended)}/${int0(n)}; load ${loadAverage()}`);
        lastSay = performance.now();
      }
      await sleep(500);
    }
    const completed = view.status === 'completed';
    const completeMs = completed ? Date.parse(view.completed_at) - startedAt : epochNow() - startedAt;
    await sink.waitFor(campaign.id, n * o.steps, completed ? 60_000 : 1000);
    const t = sink.tally(campaign.id);
    pids.forEach((p, i) => { const c = processCpuSeconds(p); if (Number.isFinite(c)) cpuLast[i] = c; });
    const wallS = (performance.now() - cpu0.at) / 1000;
    const cpu = { wallS, mailroom: cpuLast.map((c, i) => c - cpu0.mailroom[i]), postgres: commCpuWithChildren('postgres') - cpu0.postgres };
    const lastFirstMs = t.firstSends.length ? t.firstSends[t.firstSends.length - 1] - startedAt : NaN;
    const lastMessageMs = t.arrivals.length ? t.arrivals[t.arrivals.length - 1] - startedAt : NaN;
    say(`    ${completed ? 'completed' : `NOT completed (${view.status})`} after ${fixed(completeMs / 1000, 1)} s; the last first send after ${fixed(lastFirstMs / 1000, 1)} s ` +
      `(${fixed(n / (lastFirstMs / 1000), 2)} leads/s); ${int0(t.messages)} messages; CPU ${cpu.mailroom.map((c) => pct(c, wallS)).join(' + ')} (Mailroom) + ${pct(cpu.postgres, wallS)} (all postgres); load ${loadAverage()}`);

    // ---- Untimed: recovery, spans, events, checks ----
    let recovery: Recovery | null = null;
    if (kill) {
      const rows = kill.orphanRuns.length ? await store.progressAfter(kill.orphanRuns, kill.at) : [];
      const delays = rows.map((r) => {
        const ts = [r.progressed_at?.getTime(), r.finished_at && r.finished_at.getTime() > kill!.at ? r.finished_at.getTime() : undefined].filter((x): x is number => x !== undefined);
        return ts.length ? Math.min(...ts) - kill!.at : NaN;
      });
      const lastRows = kill.lastSpanRuns.length ? await store.progressAfter(kill.lastSpanRuns, kill.at) : [];
      const lastDelays = lastRows.map((r) => (r.progressed_at ? r.progressed_at.getTime() - kill!.at : r.finished_at && r.finished_at.getTime() > kill!.at ? r.finished_at.getTime() - kill!.at : NaN));
      const sorted = sortedOf(delays.filter(Number.isFinite));
      // Rates over windows after the kill, up to the moment only about the stalled runs' leads were
      // left (after that the rate falls whatever the pattern: nothing else is left to send).
      let halfRateS = NaN;
      let dip = Infinity;
      const tailIndex = Math.max(0, n - kill.orphanRuns.length - kill.orphanSends) - 1;
      const end = t.firstSends[Math.min(tailIndex, t.firstSends.length - 1)] ?? kill.at;
      for (let s = kill.at; s + RATE_WINDOW_MS <= end; s += 250) {
        const r = rateIn(t.firstSends, s, s + RATE_WINDOW_MS);
        dip = Math.min(dip, r);
        if (Number.isNaN(halfRateS) && r >= kill.preRate / 2) halfRateS = (s - kill.at) / 1000;
      }
      const sendJobs = kill.orphanSendJobs.length ? await store.jobStates(kill.orphanSendJobs) : [];
      const sendsS = !sendJobs.length ? 0 : sendJobs.every((j) => j.state === 'completed' && j.completed_on)
        ? (Math.max(...sendJobs.map((j) => j.completed_on!.getTime())) - kill.at) / 1000 : NaN;
      recovery = {
        sendsS,
        runsS: delays.length ? (delays.some((d) => !Number.isFinite(d)) ? NaN : Math.max(...delays) / 1000) : 0,
        runsMedianS: sorted.length ? percentile(sorted, 50) / 1000 : NaN,
        notProgressed: delays.filter((d) => !Number.isFinite(d)).length,
        lastSpanRunsS: lastDelays.length ? (lastDelays.some((d) => !Number.isFinite(d)) ? NaN : Math.max(...lastDelays) / 1000) : 0,
        halfRateS,
        dipShare: Number.isFinite(dip) && kill.preRate > 0 ? dip / kill.preRate : NaN,
        survivorRate: end - (kill.at + o.settleMs) >= RATE_WINDOW_MS ? rateIn(t.firstSends, kill.at + o.settleMs, end) : NaN,
        survivorEnd: end,
      };
      const buckets: string[] = [];
      for (let i = 0, b0 = kill.at - 15_000; b0 < (t.firstSends[t.firstSends.length - 1] ?? kill.at); i++, b0 = kill.at - 15_000 + i * RATE_WINDOW_MS) {
        buckets.push(`${i === 3 ? '| ' : ''}${int0(rateIn(t.firstSends, b0, b0 + RATE_WINDOW_MS) * RATE_WINDOW_MS / 1000)}`);
      }
      say(`    first sends per ${RATE_WINDOW_MS / 1000} s from 15 s before the kill (| = the kill): ${buckets.join(' ')}`);
      say(`    recovery: ${kill.orphanRuns.length} runs were mid-stage on the killed process; all made progress again ${Number.isFinite(recovery.runsS) ? `${fixed(recovery.runsS, 1)} s` : `NOT (${recovery.notProgressed} never did)`} ` +
        `after the kill (median ${fixed(recovery.runsMedianS, 1)} s); by the looser reading (active runs whose last agent call was the killed process's: ${kill.lastSpanRuns.length}) ` +
        `${Number.isFinite(recovery.lastSpanRunsS) ? `${fixed(recovery.lastSpanRunsS, 1)} s` : 'not all'}; first-send rate back to half the pre-kill ${fixed(kill.preRate, 1)}/s ` +
        `${Number.isFinite(halfRateS) ? `${fixed(halfRateS, 1)} s` : 'never'} after the kill (lowest ${RATE_WINDOW_MS / 1000} s window after it: ${Number.isFinite(recovery.dipShare) ? `${int0(recovery.dipShare * 100)} %` : '-'} of the pre-kill rate); ` +
        `the survivor alone: ${s1(recovery.survivorRate)} first sends/s; the ${kill.orphanSends} send jobs the killed process had claimed (outbox → SMTP) were done ` +
        `${Number.isFinite(sendsS) ? `${fixed(sendsS, 1)} s after the kill` : `NOT all (${sendJobs.map((j) => j.state).join(', ')})`}`);
    }
    const events = new Map((await store.eventCounts()).map((e) => [e.type, Number(e.n)]));
    const spans = await store.spanStats(campaign.id);
    const agentByWorker = new Map<string, number>();
    for (const sp of spans) if (sp.kind === 'agent') agentByWorker.set(sp.worker ?? '?', (agentByWorker.get(sp.worker ?? '?') ?? 0) + Number(sp.n));
    const decTimes = await store.decisionTimes(campaign.id);
    const decisions = decTimes.length;
    // Decisions per second with both processes (first decision → the kill) and with the survivor alone.
    const decisionRate = decisions > 1 ? (kill ? rateIn(decTimes, decTimes[0], kill.at) : rateIn(decTimes, decTimes[0], decTimes[decisions - 1])) : NaN;
    const decisionRateAlone = decisions > 1 && kill && recovery && Number.isFinite(recovery.survivorRate) ? rateIn(decTimes, kill.at + o.settleMs, recovery.survivorEnd) : NaN;
    say(`    spans: agent calls by worker ${[...agentByWorker].map(([w, c]) => `${w === kill?.worker ? `${w} (killed)` : w} ${int0(c)}`).join(', ')}; ` +
      `orchestrator decisions ${int0(decisions)}${decisions ? ` (${fixed(decisions / n, 2)} per lead; ${s1(decisionRate)}/s ${kill ? 'before the kill' : 'from first to last'}${kill ? `, ${s1(decisionRateAlone)}/s by the survivor alone` : ''})` : ''}; ` +
      `events: ${['run.rerouted', 'campaign.paused', 'run.dead', 'run.retried'].map((e) => `${e} ${events.get(e) ?? 0}`).join(', ')}`);

    // Traces: the API still gives each run's timeline, agent spans carry their worker.
    const runs: { id: string; status: string; steps_sent: number; outcome: string | null }[] = [];
    for (let cursor: string | null = ''; cursor !== null;) {
      const page: any = await api.json('GET', `/v1/campaigns/${campaign.id}/runs?limit=200${cursor ? `&cursor=${cursor}` : ''}`);
      runs.push(...page.data);
      cursor = page.next_cursor;
    }
    const sampleIds = [...new Set([
      ...(kill ? kill.orphanRuns.slice(0, 20) : []),
      ...Array.from({ length: Math.min(o.traceSample, runs.length) }, (_, i) => runs[Math.floor((i * runs.length) / Math.min(o.traceSample, runs.length))].id),
    ])];
    let tracesOk = 0;
    let tracesWithWorker = 0;
    let orphanTracesBySurvivor = 0;
    for (const id of sampleIds) {
      const tr: any = await api.json('GET', `/v1/runs/${id}/trace`);
      const tl = tr.timeline as { kind: string; name: string; at: string; input?: { worker?: string } }[];
      if (tl.some((e) => e.kind === 'agent') && tl.some((e) => e.kind === 'send' || e.name === 'message.sent')) tracesOk++;
      if (tl.filter((e) => e.kind === 'agent').every((e) => typeof e.input?.worker === 'string')) tracesWithWorker++;
      if (kill?.orphanRuns.includes(id) && tl.some((e) => (e.kind === 'agent' && e.input?.worker !== kill!.worker || e.kind === 'send') && Date.parse(e.at) > kill!.at)) orphanTracesBySurvivor++;
    }

    const f = view.funnel;
    const incomplete = [...t.leads.values()].filter((s) => s.some((c) => c < 1)).length;
    const missing = n * o.steps - (t.messages - t.duplicates);
    const dupBound = kill?.orphanSends ?? 0;
    const bad = runs.filter((r) => r.status !== 'done' || r.steps_sent !== o.steps);
    check(completed, `campaign ${completed ? 'completed' : `not completed after ${o.timeoutMs / 1000} s (status ${view.status}; funnel ${JSON.stringify(f.status)})`}`);
    check(runs.length === n && bad.length === 0, `every run ended: ${int0(runs.length)} runs, not done with ${o.steps} step(s) sent: ${bad.length}${bad[0] ? ` (first: ${JSON.stringify(bad[0])})` : ''}`);
    check((events.get('run.dead') ?? 0) === 0 && (f.status.dead ?? 0) === 0, `dead-lettered runs: ${f.status.dead ?? 0}`);
    check(f.sent_per_step.every((x: number) => x === n), `funnel sent per step: ${f.sent_per_step.map(int0).join('/')} (want ${int0(n)} each)`);
    check(t.leads.size === n && incomplete === 0 && missing === 0, `sink: ${int0(t.leads.size)} leads, ${int0(t.messages)} messages (${t.perStep.map(int0).join('/')} per step); ` +
      `leads missing a step: ${incomplete}; missing messages: ${missing}`);
    check(t.duplicates <= dupBound, `sink duplicates (a lead's step twice): ${t.duplicates}, transport bound ${dupBound} (sends claimed by the killed process at the kill, whose SMTP transaction may have ended after its last commit)`);
    if (sink.other()) check(false, `sink: ${sink.other()} messages without campaign headers`);
    check(tracesOk === sampleIds.length && tracesWithWorker === sampleIds.length, `traces: ${tracesOk}/${sampleIds.length} sampled runs show agent spans and a send; ${tracesWithWorker}/${sampleIds.length} name the worker of every agent span` +
      `${kill?.orphanRuns.length ? `; ${orphanTracesBySurvivor} of ${sampleIds.filter((id) => kill!.orphanRuns.includes(id)).length} sampled runs orphaned by the kill show an agent call by the survivor, or a send, after it` : ''}`);
    // No agent fails in this bench: a pause by the hybrid watcher would be a false alarm.
    check((events.get('campaign.paused') ?? 0) === 0, `campaign.paused events: ${events.get('campaign.paused') ?? 0} (no agent fails here)`);

    return {
      pattern, ok: failedChecks === 0, loadStart, loadEnd: loadAverage(), n, completed, completeMs, lastFirstMs, lastMessageMs, messages: t.messages,
      ttfs: sortedOf(t.firstSends.map((x) => x - startedAt)),
      preKillRate: kill ? kill.preRate : NaN,
      kill, recovery, rerouted: events.get('run.rerouted') ?? 0, paused: events.get('campaign.paused') ?? 0,
      duplicates: t.duplicates, dupBound, decisions, decisionRate, decisionRateAlone, agentByWorker, cpu, checks,
    };
  } finally {
    for (const m of cluster.members) sayMailroomLog(m.logSince());
    await cluster.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

const s1 = (x: number) => (Number.isFinite(x) ? fixed(x, 1) : '-');

function printResults(results: PatternResult[], o: Options): void {
  const cols: Column[] = [
    { h: 'pattern', w: 13, r: false }, { h: 'load', w: 5, r: true },
    { h: 'leads/s', w: 7, r: true }, { h: 'msgs/s', w: 6, r: true }, { h: 'pre-kill/s', w: 10, r: true }, { h: 'survivor/s', w: 10, r: true },
    { h: 'TTFS p50/p95 s', w: 14, r: true },
    { h: 'stalled', w: 7, r: true }, { h: 'recovery s', w: 10, r: true }, { h: 'sends s', w: 7, r: true }, { h: 'rate ≥½ s', w: 9, r: true },
    { h: 'rerouted', w: 8, r: true }, { h: 'dup/bound', w: 9, r: true }, { h: 'CPU', w: 14, r: true }, { h: 'checks', w: 6, r: false },
  ];
  say('');
  printTableHeader(cols);
  for (const r of results) {
    printTableRow([
      r.pattern, r.loadStart.split(',')[0],
      fixed(r.n / (r.lastFirstMs / 1000), 2), fixed(r.messages / (r.lastMessageMs / 1000), 2), s1(r.preKillRate), r.recovery ? s1(r.recovery.survivorRate) : '-',
      `${s1(percentile(r.ttfs, 50) / 1000)}/${s1(percentile(r.ttfs, 95) / 1000)}`,
      r.kill ? int0(r.kill.orphanRuns.length) : '-', r.recovery ? s1(r.recovery.runsS) : '-', r.recovery ? (r.kill!.orphanSends ? s1(r.recovery.sendsS) : '-') : '-', r.recovery ? s1(r.recovery.halfRateS) : '-',
      int0(r.rerouted), `${r.duplicates}/${r.dupBound}`,
      `${r.cpu.mailroom.map((c) => pct(c, r.cpu.wallS)).join('+')}+${pct(r.cpu.postgres, r.cpu.wallS)}`,
      r.ok ? 'ok' : 'FAILED',
    ], cols);
  }
  say('');
  say(`leads/s = N ÷ (campaign creation → the last lead's first message at the sink); msgs/s = messages ÷ (creation → the last message);`);
  say(`pre-kill/s = first sends per second at the sink over the ${PRE_KILL_WINDOW_MS / 1000} s before the kill (both processes, undisturbed);`);
  say(`survivor/s = the same from ${o.settleMs / 1000} s after the kill until only about the stalled runs' leads were left (one process);`);
  say('TTFS = time to first send: campaign creation (the POST, all leads in it) → the lead\'s first message at the sink, over all N leads;');
  say(`stalled = runs mid-stage on the killed process (jobs of the campaign queues claimed at the kill and still claimed, unchanged, ${o.settleMs / 1000} s later);`);
  say('recovery s = kill → the last of them made progress again (its next span: an agent call, handoff, send or decision other than a re-queue, or its end);');
  say('sends s = kill → the last outbound send job the killed process had claimed (a message handed to the outbox, not yet relayed) was done (- = none);');
  say(`rate ≥½ s = kill → the start of the first ${RATE_WINDOW_MS / 1000} s window whose first-send rate is at least half the pre-kill rate`);
  say('  (0 = it never fell below; windows only up to when about nothing but the stalled runs\' leads was left to send);');
  say('rerouted = run.rerouted events (the hybrid watcher re-queuing a stalled stage); dup/bound = duplicates at the sink / sends the killed process had claimed;');
  say('CPU = each Mailroom process (the killed one until its death) + every postgres process on the machine, ÷ wall time (100% = one core).');
  say('');
  const perLeadDecisions = results.find((r) => r.pattern === 'centralized' && r.decisions > 0);
  if (perLeadDecisions) {
    const d = perLeadDecisions.decisions / perLeadDecisions.n;
    say(`Centralized bound: ${fixed(d, 2)} orchestrator decisions per lead (measured) at ${o.decisionsPerSecond} decisions/s per process × ${PROCESSES} processes ` +
      `(× 1 after the kill) → at most ${fixed((o.decisionsPerSecond * PROCESSES) / d, 1)} leads/s with both, ${fixed(o.decisionsPerSecond / d, 1)} with one; ` +
      `observed ${s1(perLeadDecisions.decisionRate)} decisions/s before the kill, ${s1(perLeadDecisions.decisionRateAlone)}/s by the survivor alone.`);
  }
  say('');
  say('Checks:');
  for (const r of results) for (const c of r.checks) say(`  ${r.pattern}: ${c}`);
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

/** Which code the Mailroom children run: the commit, and whether src/ has uncommitted changes. */
function codeState(): string {
  const git = (...args: string[]) => spawnSync('git', args, { cwd: ROOT, encoding: 'utf8' });
  const head = git('rev-parse', '--short', 'HEAD');
  if (head.status !== 0) return `${ROOT} (not a git checkout)`;
  const dirty = git('status', '--porcelain', '--', 'src').stdout.split('\n').filter(Boolean).length;
  return `${head.stdout.trim()}${dirty ? ` with uncommitted changes in ${dirty} file(s) under src/` : ', src/ as committed'}`;
}

async function main(): Promise<void> {
  const o = parseOptions();
  const started = performance.now();
  say(`Mailroom coordination-patterns benchmark — ${machineSummary()}`);
  say(`  ${int0(o.leads)} silent leads, ${o.steps} step(s), every day all day, campaign clock ×1,000,000; patterns ${o.patterns.join(', ')}${o.omitPattern ? ' (pattern field OMITTED: every run uses the engine\'s default)' : ''}`);
  say(`  ${PROCESSES} × mailroom serve per pattern on one fresh PostgreSQL schema (${o.databaseUrl}); agents bench/slow-agents.ts (${latencySpec(o.latency)} ms)`);
  say(`  centralized budget K = ${o.decisionsPerSecond} decisions/s per process; hybrid checkpoints.stage_seconds = ${o.stageSeconds}; ` +
    `${o.killAt > 0 ? `kill -9 of the second process at ${int0(o.killAt * 100)} % of the first sends` : 'no kill'}; timeout ${o.timeoutMs / 1000} s per pattern`);
  say(`  code: ${codeState()}`);
  say(`  load average at start: ${loadAverage()} (other processes on this machine skew every number below)`);
  const sink = await startSink(o.steps);
  say(`  sink (in this process, smtp-server, counts per lead and step) on 127.0.0.1:${sink.port}`);
  const pool = new pg.Pool({ connectionString: o.databaseUrl, max: 2 });
  addCleanup(() => pool.end());
  const results: PatternResult[] = [];
  for (const pattern of o.patterns) {
    say('');
    try {
      results.push(await runPattern(o, pattern, sink, pool));
    } catch (err) {
      say(`  ${pattern} failed: ${(err as Error).message.split('\n').slice(0, 6).join(' | ')}`);
      process.exitCode = 1;
    }
  }
  say('');
  say('================================================================================================');
  say(`Results (total bench time ${fixed((performance.now() - started) / 60_000, 1)} min; load average at the end: ${loadAverage()})`);
  if (results.length) printResults(results, o);
  if (results.some((r) => !r.ok) || results.length < o.patterns.length) process.exitCode = 1;
}

runBench(main, 'stopping the Mailroom processes and removing temporary data');
