/**
 * `npm run bench:campaign` — campaign throughput: N leads (default 1,000 then 10,000), a 3-step
 * sequence, agents with simulated latency, on the embedded store and on PostgreSQL, each N on a
 * fresh Mailroom:
 *
 *   - Mailroom is `node bin/mailroom.js serve` in its own process (fresh data directory, or a fresh
 *     PostgreSQL schema), relaying every outbound message to a sink in this process;
 *   - the agents are bench/slow-agents.ts, loaded by Mailroom through MAILROOM_AGENTS_MODULE: the
 *     built-in agents behind a fixed wait per role (BENCH_AGENT_LATENCY);
 *   - the campaign is the demo's outreach campaign (src/orchestrator/demo/scenario.ts) with every
 *     prospect silent, `anytime` send windows (every day, all day), no delays between steps, no
 *     final wait, and a campaign clock at ×1,000,000 (the built-in sequencing agent spreads sends
 *     inside an open window by up to 15 campaign minutes: under 1 real ms at that scale);
 *   - the sink counts what arrives per lead and step from the X-Mailroom-Lead / X-Mailroom-Step
 *     headers and reports duplicates.
 *
 * Measured: time from campaign creation to completion (GET /v1/campaigns/{id}) and to the sink
 * having every message, leads/s and messages/s, step latency (from when a step became due to its
 * handoff to the outbox, from the runs' traces), Mailroom's memory (VmHWM, and RSS every 500 ms)
 * and CPU. See bench/README.md ("Campaigns") for how to read the output.
 */
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { SMTPServer } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { outreachCampaign, scenarioProspects } from '../src/orchestrator/demo/scenario.ts';
import { DEFAULT_ENGINE_OPTIONS } from '../src/orchestrator/engine.ts';
import type { RoleName } from '../src/orchestrator/roles.ts';
import {
  ADMIN_TOKEN, addCleanup, cleanEnv, type Column, commCpu, DEFAULT_DATABASE_URL, type Engine, engineOption, fixed, int0, intOption,
  loadAverage, machineSummary, parseCommandLine, pct, percentile, printTableHeader, printTableRow, processCpuSeconds, profileDirOption,
  ROOT, runBench, say, sayMailroomLog, sleep, startMailroomProcess, type ThreadCpu, threadCpu,
} from './common.ts';
import { parseLatency } from './slow-agents.ts';

const AGENTS_MODULE = path.join(ROOT, 'bench', 'slow-agents.ts');
const STEPS = 3;
const ROLES: RoleName[] = ['research', 'personalize', 'sequence', 'respond'];

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

const USAGE = `usage: node bench/campaign.ts [options]   (every option also as an environment variable)
  --engine LIST       embedded, postgres or both, e.g. embedded,postgres (BENCH_ENGINE, default embedded,postgres)
  --leads LIST        lead counts, each on a fresh Mailroom          (BENCH_LEADS, default 1000,10000)
  --latency SPEC      simulated agent latency in ms per role          (BENCH_AGENT_LATENCY,
                      default research=200,personalize=400,sequence=20,respond=100)
  --lead-batch B      leads per request: the first B with POST /v1/campaigns, the rest by
                      POST /v1/campaigns/{id}/leads, B at a time; 0 = all in one request
                                                                      (BENCH_LEAD_BATCH, default 1000)
  --scale S           campaign-clock speed-up (max 1000000)           (BENCH_SCALE, default 1000000)
  --trace-sample K    runs whose traces give the step latencies       (BENCH_TRACE_SAMPLE, default 1000)
  --timeout S         give up on one campaign after S seconds         (BENCH_TIMEOUT, default 3600)
  --database-url U    PostgreSQL for --engine postgres                (BENCH_DATABASE_URL, default ${DEFAULT_DATABASE_URL})
  --profile DIR       run Mailroom with node --cpu-prof, profiles written to DIR at its exit (BENCH_PROFILE)
  BENCH_MAILROOM_NODE_OPTIONS   NODE_OPTIONS for the Mailroom child only (experiments)
  BENCH_ENGINE_CONCURRENCY      runs the engine works at once, for the ideal (default: the engine's
                                job batch size, DEFAULT_ENGINE_OPTIONS.batchSize = ${DEFAULT_ENGINE_OPTIONS.batchSize})`;

interface Options {
  engines: Engine[];
  leads: number[];
  latency: Record<RoleName, number>;
  leadBatch: number;
  scale: number;
  traceSample: number;
  timeoutMs: number;
  databaseUrl: string;
  profileDir: string | null;
  concurrency: number;
}

function listOption<T>(v: string, each: (s: string) => T): T[] {
  const out = v.split(',').map((s) => s.trim()).filter(Boolean).map(each);
  if (!out.length) throw new Error(`empty list: "${v}"`);
  return out;
}

function parseOptions(): Options {
  const values = parseCommandLine(USAGE, {
    engine: { type: 'string' },
    leads: { type: 'string' },
    latency: { type: 'string' },
    'lead-batch': { type: 'string' },
    scale: { type: 'string' },
    'trace-sample': { type: 'string' },
    timeout: { type: 'string' },
    'database-url': { type: 'string' },
    profile: { type: 'string' },
  });
  const env = process.env;
  const leadBatch = intOption('lead-batch', values['lead-batch'] ?? env.BENCH_LEAD_BATCH, 1000, 0);
  return {
    engines: listOption(values.engine ?? env.BENCH_ENGINE ?? 'embedded,postgres', engineOption),
    leads: listOption(values.leads ?? env.BENCH_LEADS ?? '1000,10000', (s) => intOption('leads', s, 0, 1)),
    latency: parseLatency(values.latency ?? env.BENCH_AGENT_LATENCY),
    leadBatch: leadBatch === 0 ? Infinity : leadBatch,
    scale: intOption('scale', values.scale ?? env.BENCH_SCALE, 1_000_000, 1),
    traceSample: intOption('trace-sample', values['trace-sample'] ?? env.BENCH_TRACE_SAMPLE, 1000, 1),
    timeoutMs: intOption('timeout', values.timeout ?? env.BENCH_TIMEOUT, 3600, 1) * 1000,
    databaseUrl: values['database-url'] ?? env.BENCH_DATABASE_URL ?? DEFAULT_DATABASE_URL,
    profileDir: profileDirOption(values.profile ?? env.BENCH_PROFILE),
    concurrency: intOption('BENCH_ENGINE_CONCURRENCY', env.BENCH_ENGINE_CONCURRENCY, DEFAULT_ENGINE_OPTIONS.batchSize, 1),
  };
}

const latencySpec = (l: Record<RoleName, number>) => ROLES.map((r) => `${r}=${l[r]}`).join(',');

/** Agent time of one silent lead's run: research once, then personalize + sequence per step. */
const agentMsPerLead = (l: Record<RoleName, number>) => l.research + STEPS * (l.personalize + l.sequence);

// ---------------------------------------------------------------------------------------------
// The sink: the relay Mailroom sends every campaign message to, counting per lead and step
// ---------------------------------------------------------------------------------------------

interface CampaignTally {
  messages: number;
  /** Messages whose (lead, step) had arrived before. */
  duplicates: number;
  perStep: number[];
  /** lead id → how many times each step (index step - 1) arrived. */
  leads: Map<string, number[]>;
  firstAt: number;
  lastAt: number;
}

interface Sink {
  port: number;
  tally(campaignId: string): CampaignTally;
  /** Messages without campaign headers (none expected). */
  other(): number;
  /** Resolves once `campaignId` has `count` messages, or after `timeoutMs` (check the tally). */
  waitFor(campaignId: string, count: number, timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

const epochNow = () => performance.timeOrigin + performance.now();

async function startSink(): Promise<Sink> {
  // smtp-server's 100 ms early-talker pause before the greeting, removed as in bench/sink.ts: a
  // pooled relay client reconnects every 100 messages, and a real relay greets at once.
  const proto = SMTPConnection.prototype as unknown as { init(): void; _setListeners(cb: () => void): void; connectionReady(): void };
  proto.init = function init(this: typeof proto) {
    this._setListeners(() => this.connectionReady());
  };
  const tallies = new Map<string, CampaignTally>();
  const waiters = new Set<() => void>();
  let other = 0;
  const tally = (id: string) => {
    let t = tallies.get(id);
    if (!t) tallies.set(id, (t = { messages: 0, duplicates: 0, perStep: Array(STEPS).fill(0), leads: new Map(), firstAt: 0, lastAt: 0 }));
    return t;
  };
  const count = (header: string) => {
    const at = epochNow();
    const h = (name: string) => new RegExp(`^${name}:[ \\t]*(\\S+)`, 'im').exec(header)?.[1];
    const campaign = h('X-Mailroom-Campaign');
    const lead = h('X-Mailroom-Lead');
    const step = Number(h('X-Mailroom-Step'));
    if (!campaign || !lead || !(step >= 1)) { other++; return; }
    const t = tally(campaign);
    t.messages++;
    t.firstAt ||= at;
    t.lastAt = at;
    let steps = t.leads.get(lead);
    if (!steps) t.leads.set(lead, (steps = Array(STEPS).fill(0)));
    if (steps[step - 1]) t.duplicates++;
    steps[step - 1] = (steps[step - 1] ?? 0) + 1;
    t.perStep[step - 1] = (t.perStep[step - 1] ?? 0) + 1;
    for (const w of [...waiters]) w();
  };
  const server = new SMTPServer({
    name: 'campaign-sink.bench.test', banner: 'bench campaign sink (discards)', size: 10 * 1024 * 1024,
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
      const check = () => { if (tally(campaignId).messages >= n) finish(); };
      const timer = setTimeout(finish, timeoutMs);
      waiters.add(check);
      check();
    }),
    stop,
  };
}

// ---------------------------------------------------------------------------------------------
// Mailroom: the process, its API, its memory
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
      if (!res.ok) throw new Error(`${method} ${p}: HTTP ${res.status} ${text.slice(0, 300)}`);
      return (text ? JSON.parse(text) : null) as never;
    },
  };
}

/** VmRSS and VmHWM (peak resident set) of a process in MB, from /proc/<pid>/status; NaN when unknown. */
function memoryOf(pid: number): { rss: number; hwm: number } {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)\\s+kB`, 'm').exec(s)?.[1] ?? NaN);
    return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
  } catch {
    return { rss: NaN, hwm: NaN };
  }
}

/**
 * Seconds the process's threads (those alive now) spent on a CPU and waiting for one while
 * runnable, from /proc/<pid>/task/<tid>/schedstat: on a shared machine the second says how much of
 * the run the process was held back by other load rather than by its own work.
 */
function schedOf(pid: number): Map<string, { run: number; wait: number }> {
  const out = new Map<string, { run: number; wait: number }>();
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        const [run, wait] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').trim().split(/\s+/).map(Number);
        out.set(tid, { run: run / 1e9, wait: wait / 1e9 });
      } catch {}
    }
  } catch {}
  return out;
}

function schedSince(pid: number, before: Map<string, { run: number; wait: number }>): { run: number; wait: number } {
  let run = 0;
  let wait = 0;
  for (const [tid, s] of schedOf(pid)) {
    run += s.run - (before.get(tid)?.run ?? 0);
    wait += s.wait - (before.get(tid)?.wait ?? 0);
  }
  return { run, wait };
}

/** RSS every 500 ms: the highest seen, and the value at chosen moments. */
function memorySampler(pid: number) {
  let peak = 0;
  let last = memoryOf(pid);
  const timer = setInterval(() => {
    const m = memoryOf(pid);
    if (Number.isFinite(m.rss)) { last = m; peak = Math.max(peak, m.rss); }
  }, 500);
  return {
    peak: () => peak,
    last: () => last,
    reset: () => { peak = memoryOf(pid).rss; },
    stop: () => clearInterval(timer),
  };
}

// ---------------------------------------------------------------------------------------------
// One campaign
// ---------------------------------------------------------------------------------------------

interface StepStats {
  /** ms from due to handoff, sorted */
  latency: Float64Array;
  /** ms of the same not spent in agent calls (queue waits, database, outbox), sorted */
  overhead: Float64Array;
}

interface RunResult {
  engine: Engine;
  n: number;
  ok: boolean;
  loadStart: string;
  loadEnd: string;
  /** ms: every lead submitted (all POSTs answered) */
  submitMs: number;
  completeMs: number;
  sinkMs: number;
  steps: StepStats[];
  traced: number;
  rssStart: number;
  rssPeak: number;
  hwm: number;
  cpu: { wallS: number; mailroom: number; postgres: number; self: number; threads: ThreadCpu[] };
  /** Seconds Mailroom's threads were runnable but waiting for a CPU, and on one (schedstat). */
  sched: { run: number; wait: number };
  duplicates: number;
  missing: number;
  dead: number;
  checks: string[];
}

const sortedOf = (xs: number[]) => Float64Array.from(xs).sort();

async function runCampaign(o: Options, engine: Engine, n: number, sink: Sink): Promise<RunResult> {
  const loadStart = loadAverage();
  say(`  ${engine}, N = ${int0(n)} (load average ${loadStart})`);
  const t0 = performance.now();
  const mr = await startMailroomProcess({
    engine, databaseUrl: o.databaseUrl, profileDir: o.profileDir, dataDirPrefix: 'mailroom-bench-campaign-',
    baseEnv: cleanEnv({ dropNodeOptions: true }),
    env: {
      MAILROOM_SMTP_RELAY_URL: `smtp://127.0.0.1:${sink.port}`,
      MAILROOM_DNS_SERVERS: '127.0.0.1:1',
      MAILROOM_AGENTS_MODULE: AGENTS_MODULE,
      BENCH_AGENT_LATENCY: latencySpec(o.latency),
    },
    banner: /HTTP API\s+(http:\/\/\S+?:\d+)\b/,
  });
  const pid = mr.child.pid;
  const api = apiClient(mr.banner[1]);
  const memory = memorySampler(pid);
  const checks: string[] = [];
  let failedChecks = 0;
  const check = (ok: boolean, text: string) => { checks.push(`${ok ? 'ok  ' : 'FAIL'} ${text}`); if (!ok) failedChecks++; };
  try {
    say(`    started in ${fixed((performance.now() - t0) / 1000, 1)} s (${mr.banner[1]}, pid ${pid}); agents: slow (${latencySpec(o.latency)} ms)`);
    const inbox = await api.json<{ id: string; address: string }>('POST', '/v1/inboxes', { username: 'ada', display_name: 'Ada (bench)' });
    await api.json('POST', '/v1/limits', { scope: 'global', max: 10_000_000, window: 'minute' });
    const prospects = scenarioProspects({ leads: n, perCompany: 1, mix: { silent: 1 } });
    const spec = outreachCampaign(prospects, {
      leads: n, senders: [inbox.address], dailyCap: 100_000, escalateTo: `owner@${inbox.address.split('@')[1]}`, scale: o.scale,
      anytime: true, name: `bench ${engine} ${n}`, agents: { research: 'slow', personalize: 'slow', sequence: 'slow', respond: 'slow' },
    });
    const leads = spec.leads ?? [];
    await sleep(1000); // let the start-up settle before the baseline
    const rssStart = memoryOf(pid).rss;
    memory.reset();
    const cpu0 = { at: performance.now(), mailroom: processCpuSeconds(pid), postgres: engine === 'postgres' ? commCpu('postgres') : NaN, self: process.cpuUsage(), threads: threadCpu(pid), sched: schedOf(pid) };

    // ---- The timed part: creation → completion, and → the sink having every message ----
    const startedAt = epochNow();
    const campaign = await api.json<{ id: string }>('POST', '/v1/campaigns', { ...spec, leads: leads.slice(0, o.leadBatch) });
    for (let i = o.leadBatch; i < leads.length; i += o.leadBatch) {
      await api.json('POST', `/v1/campaigns/${campaign.id}/leads`, { leads: leads.slice(i, i + o.leadBatch) });
    }
    const submitMs = epochNow() - startedAt;
    say(`    campaign ${campaign.id}: ${int0(n)} leads submitted in ${fixed(submitMs / 1000, 1)} s (${o.leadBatch >= n ? 'one request' : `${Math.ceil(n / o.leadBatch)} requests of up to ${int0(o.leadBatch)}`})`);

    let view: any;
    let lastSay = 0;
    let lastDone = 0;
    let lastAt = performance.now();
    for (;;) {
      view = await api.json('GET', `/v1/campaigns/${campaign.id}`);
      const f = view.funnel;
      const ended = (f.status.done ?? 0) + (f.status.needs_human ?? 0) + (f.status.dead ?? 0);
      if (view.status === 'completed') break;
      if (epochNow() - startedAt > o.timeoutMs) break;
      if (performance.now() - lastSay > 10_000) {
        const secs = (epochNow() - startedAt) / 1000;
        const rate = (ended - lastDone) / ((performance.now() - lastAt) / 1000);
        say(`    … ${fixed(secs, 0)} s: sent ${f.sent_per_step.map(int0).join('/')}, ended ${int0(ended)}/${int0(n)} (${fixed(rate, 1)} leads/s lately), ` +
          `sink ${int0(sink.tally(campaign.id).messages)}, RSS ${int0(memory.last().rss)} MB, load ${loadAverage()}`);
        lastSay = performance.now();
        lastDone = ended;
        lastAt = performance.now();
      }
      await sleep(1000);
    }
    const completed = view.status === 'completed';
    const completeMs = completed ? Date.parse(view.completed_at) - startedAt : epochNow() - startedAt;
    const hwm = memoryOf(pid).hwm;
    const rssPeak = Math.max(memory.peak(), memoryOf(pid).rss);
    await sink.waitFor(campaign.id, n * STEPS, completed ? 60_000 : 1000);
    const t = sink.tally(campaign.id);
    const sinkMs = t.lastAt - startedAt;
    const now = { mailroom: processCpuSeconds(pid), postgres: engine === 'postgres' ? commCpu('postgres') : NaN, self: process.cpuUsage(cpu0.self), threads: threadCpu(pid) };
    const wallS = (performance.now() - cpu0.at) / 1000;
    const sched = schedSince(pid, cpu0.sched);
    const cpu = {
      wallS, mailroom: now.mailroom - cpu0.mailroom, postgres: now.postgres - cpu0.postgres, self: (now.self.user + now.self.system) / 1e6,
      threads: [...now.threads].map(([tid, th]) => ({ name: th.name, cpu: th.cpu - (cpu0.threads.get(tid)?.cpu ?? 0) })).sort((a, b) => b.cpu - a.cpu),
    };
    say(`    ${completed ? 'completed' : 'NOT completed'} after ${fixed(completeMs / 1000, 1)} s = ${fixed(n / (completeMs / 1000), 2)} leads/s; ` +
      `the sink had ${int0(t.messages)} messages after ${fixed(sinkMs / 1000, 1)} s; Mailroom CPU ${pct(cpu.mailroom, wallS)}` +
      `${engine === 'postgres' ? `, postgres ${pct(cpu.postgres, wallS)}` : ''}, threads ${cpu.threads.filter((x) => x.cpu / wallS >= 0.02).slice(0, 4).map((x) => `${x.name} ${pct(x.cpu, wallS)}`).join(', ')}; ` +
      `runnable but waiting for a CPU ${pct(sched.wait, wallS)} (load average now ${loadAverage()})`);

    // ---- Untimed: checks and the step latencies from the traces ----
    const f = view.funnel;
    const dead = f.failed ?? 0;
    check(completed, `campaign ${completed ? 'completed' : `not completed after ${o.timeoutMs / 1000} s`} (funnel: ${JSON.stringify(f.status)})`);
    check(dead === 0, `dead-lettered runs: ${dead}`);
    check(f.sent_per_step.every((x: number) => x === n), `funnel sent per step: ${f.sent_per_step.map(int0).join('/')} (want ${int0(n)} each)`);
    check((f.outcomes.no_reply ?? 0) === n, `outcomes: ${JSON.stringify(f.outcomes)} (want no_reply for all ${int0(n)})`);
    const incomplete = [...t.leads.values()].filter((s) => s.some((c) => c !== 1)).length;
    const missing = n * STEPS - (t.messages - t.duplicates);
    check(t.duplicates === 0, `sink duplicates (a lead's step received twice): ${t.duplicates}`);
    check(t.leads.size === n && incomplete === 0 && missing === 0, `sink: ${int0(t.leads.size)} leads, ${int0(t.messages)} messages (${t.perStep.map(int0).join('/')} per step); ` +
      `leads without exactly one of each step: ${incomplete}; missing messages: ${missing}`);
    if (sink.other()) check(false, `sink: ${sink.other()} messages without campaign headers`);

    const runs: { id: string; status: string; steps_sent: number; outcome: string | null }[] = [];
    for (let cursor: string | null = ''; cursor !== null;) {
      const page: any = await api.json('GET', `/v1/campaigns/${campaign.id}/runs?limit=200${cursor ? `&cursor=${cursor}` : ''}`);
      runs.push(...page.data);
      cursor = page.next_cursor;
    }
    const bad = runs.filter((r) => r.status !== 'done' || r.steps_sent !== STEPS || r.outcome !== 'no_reply');
    check(runs.length === n && bad.length === 0, `runs: ${int0(runs.length)}, of which not done with ${STEPS} steps sent: ${bad.length}${bad[0] ? ` (first: ${JSON.stringify(bad[0])})` : ''}`);

    const k = Math.min(o.traceSample, runs.length);
    const sample = Array.from({ length: k }, (_, i) => runs[Math.floor((i * runs.length) / k)]);
    const lat: number[][] = Array.from({ length: STEPS }, () => []);
    const over: number[][] = Array.from({ length: STEPS }, () => []);
    let next = 0;
    await Promise.all(Array.from({ length: 4 }, async () => {
      for (let i = next++; i < sample.length; i = next++) {
        const tr: any = await api.json('GET', `/v1/runs/${sample[i].id}/trace`);
        const spans = (tr.timeline as any[]).filter((e) => e.kind !== 'event').map((e) => ({ kind: e.kind as string, name: e.name as string, at: Date.parse(e.at), ms: e.duration_ms as number }));
        const sends = spans.filter((s) => s.kind === 'send').map((s) => ({ step: Number(/(\d+)$/.exec(s.name)?.[1]), end: s.at + s.ms })).sort((a, b) => a.step - b.step);
        let due = Date.parse(tr.run.created_at);
        for (const s of sends) {
          if (!(s.step >= 1 && s.step <= STEPS)) continue;
          const agent = spans.filter((x) => x.kind === 'agent' && x.at >= due && x.at < s.end).reduce((a, x) => a + x.ms, 0);
          lat[s.step - 1].push(s.end - due);
          over[s.step - 1].push(s.end - due - agent);
          due = s.end;
        }
      }
    }));
    return {
      engine, n, ok: failedChecks === 0, loadStart, loadEnd: loadAverage(), submitMs, completeMs, sinkMs,
      steps: lat.map((l, i) => ({ latency: sortedOf(l), overhead: sortedOf(over[i]) })), traced: k,
      rssStart, rssPeak, hwm, cpu, sched, duplicates: t.duplicates, missing, dead, checks,
    };
  } finally {
    memory.stop();
    sayMailroomLog(mr.logSince());
    await mr.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

const ms = (sorted: Float64Array, p: number) => (sorted.length ? int0(percentile(sorted, p)) : '-');
/** Steps 2… together: each from the previous step's handoff. */
const laterSteps = (r: RunResult): StepStats => ({
  latency: sortedOf(r.steps.slice(1).flatMap((s) => [...s.latency])),
  overhead: sortedOf(r.steps.slice(1).flatMap((s) => [...s.overhead])),
});

function printResults(results: RunResult[], o: Options): void {
  const perLead = agentMsPerLead(o.latency);
  const ideal = o.concurrency / (perLead / 1000);
  const cols: Column[] = [
    { h: 'engine', w: 8, r: false }, { h: 'N', w: 6, r: true }, { h: 'load start', w: 10, r: true },
    { h: 'complete s', w: 10, r: true }, { h: 'sink s', w: 7, r: true }, { h: 'leads/s', w: 7, r: true }, { h: 'msgs/s', w: 6, r: true },
    { h: 'of ideal', w: 8, r: true },
    { h: 'step 1 p50/p95/max ms', w: 25, r: true }, { h: 'steps 2-3 p50/p95/max ms', w: 24, r: true },
    { h: 'RSS start/peak MB', w: 17, r: true }, { h: 'VmHWM MB', w: 8, r: true }, { h: 'CPU', w: 9, r: true }, { h: 'CPU wait', w: 8, r: true },
    { h: 'checks', w: 6, r: false },
  ];
  say('');
  printTableHeader(cols);
  for (const r of results) {
    const s1 = r.steps[0].latency;
    const s23 = laterSteps(r).latency;
    const rate = r.n / (r.completeMs / 1000);
    printTableRow([
      r.engine, int0(r.n), r.loadStart.split(',')[0],
      fixed(r.completeMs / 1000, 1), fixed(r.sinkMs / 1000, 1), fixed(rate, 2), fixed((r.n * STEPS) / (r.sinkMs / 1000), 1),
      `${int0((rate / ideal) * 100)}%`,
      `${ms(s1, 50)}/${ms(s1, 95)}/${ms(s1, 100)}`, `${ms(s23, 50)}/${ms(s23, 95)}/${ms(s23, 100)}`,
      `${int0(r.rssStart)}/${int0(r.rssPeak)}`, int0(r.hwm),
      `${pct(r.cpu.mailroom, r.cpu.wallS)}${r.engine === 'postgres' ? `+${pct(r.cpu.postgres, r.cpu.wallS)}` : ''}`,
      pct(r.sched.wait, r.cpu.wallS),
      r.ok ? 'ok' : 'FAILED',
    ], cols);
  }
  say('');
  say('complete s = first POST → campaign completed_at; sink s = first POST → the sink receiving the last message;');
  say(`leads/s = N ÷ complete s; msgs/s = ${STEPS}·N ÷ sink s; of ideal = leads/s ÷ the ideal below;`);
  say('step latency = from when a step became due (step 1: the run\'s creation; later steps: the previous step\'s handoff)');
  say(`to its handoff to the outbox, over ${results.map((r) => int0(r.traced)).join('/')} sampled runs' traces; CPU = Mailroom's process (+ all postgres`);
  say('processes) ÷ the wall time of the run (100% = one core); CPU wait = time Mailroom\'s threads were runnable but waiting');
  say('for a CPU (/proc schedstat; other load on the machine), same unit; RSS/VmHWM = Mailroom\'s process only (not PostgreSQL).');

  say('');
  say(`Ideal for this agent latency: a lead's run spends ${int0(perLead)} ms in agent calls (research ${o.latency.research} + ${STEPS} × ` +
    `(personalize ${o.latency.personalize} + sequence ${o.latency.sequence})); with ${o.concurrency} runs worked at once (the engine's job batch size),`);
  say(`the engine cannot exceed ${o.concurrency} ÷ ${fixed(perLead / 1000, 2)} s = ${fixed(ideal, 2)} leads/s (${int0((ideal * STEPS))} messages/s), whatever the store.`);
  for (const r of results) {
    const rate = r.n / (r.completeMs / 1000);
    const busy = (rate * perLead) / 1000;
    const s1 = r.steps[0];
    const later = laterSteps(r);
    say(`  ${r.engine} N=${int0(r.n)}: ${fixed(rate, 2)} leads/s = ${int0((rate / ideal) * 100)}% of ideal; agent calls in flight on average ${fixed(busy, 1)} of ${o.concurrency}; ` +
      `time not in agent calls per step p50/p95: step 1 ${ms(s1.overhead, 50)}/${ms(s1.overhead, 95)} ms, steps 2-3 ${ms(later.overhead, 50)}/${ms(later.overhead, 95)} ms`);
  }

  say('');
  say('Peak memory as leads grow (target: flat, ≤ 1.5× from the smallest N to the largest):');
  for (const engine of o.engines) {
    const rs = results.filter((r) => r.engine === engine).sort((a, b) => a.n - b.n);
    if (rs.length < 2) { say(`  ${engine}: one N only, no ratio`); continue; }
    const [lo, hi] = [rs[0], rs[rs.length - 1]];
    const rHwm = hi.hwm / lo.hwm;
    const rRss = hi.rssPeak / lo.rssPeak;
    say(`  ${engine}: VmHWM ${int0(lo.hwm)} → ${int0(hi.hwm)} MB (${fixed(rHwm, 2)}×), sampled RSS peak ${int0(lo.rssPeak)} → ${int0(hi.rssPeak)} MB (${fixed(rRss, 2)}×), ` +
      `N ${int0(lo.n)} → ${int0(hi.n)}: ${Math.max(rHwm, rRss) <= 1.5 ? 'FLAT (target met)' : 'NOT FLAT (target missed)'}`);
  }

  say('');
  say('Checks:');
  for (const r of results) for (const c of r.checks) say(`  ${r.engine} N=${int0(r.n)}: ${c}`);
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
  say(`Mailroom campaign benchmark — ${machineSummary()}`);
  say(`  leads ${o.leads.map(int0).join(', ')} on ${o.engines.join(', ')}; ${STEPS} steps, no delays, every day all day, campaign clock ×${int0(o.scale)}, every prospect silent`);
  say(`  agents: bench/slow-agents.ts (built-in + ${latencySpec(o.latency)} ms); lead requests of ${Number.isFinite(o.leadBatch) ? int0(o.leadBatch) : 'all'}`);
  say(`  code: ${codeState()}`);
  say(`  load average at start: ${loadAverage()} (other processes on this machine skew every number below)`);
  const sink = await startSink();
  say(`  sink (in this process, smtp-server, counts per lead and step) on 127.0.0.1:${sink.port}`);
  const results: RunResult[] = [];
  for (const n of [...o.leads].sort((a, b) => a - b)) {
    for (const engine of o.engines) {
      say('');
      try {
        results.push(await runCampaign(o, engine, n, sink));
      } catch (err) {
        say(`  ${engine} N=${int0(n)} failed: ${(err as Error).message.split('\n').slice(0, 6).join(' | ')}`);
        process.exitCode = 1;
      }
    }
  }
  await sink.stop();
  say('');
  say('================================================================================================');
  say(`Results (total bench time ${fixed((performance.now() - started) / 60_000, 1)} min; load average at the end: ${loadAverage()})`);
  if (results.length) printResults(results, o);
  if (results.some((r) => !r.ok)) process.exitCode = 1;
}

runBench(main, 'stopping Mailroom and removing temporary data');
