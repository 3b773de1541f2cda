/**
 * `npm run bench:outbound` — outbound throughput of Mailroom against a raw nodemailer pool, in one
 * run, to the same local SMTP sink:
 *
 *   - mailroom: N sends through the API (`POST /v1/inboxes/{id}/messages`, C concurrent HTTP
 *               clients, an Idempotency-Key on every request) to `node bin/mailroom.js serve`, a
 *               fresh data directory (or a fresh PostgreSQL schema with `--engine postgres`),
 *               relaying to the sink through MAILROOM_SMTP_RELAY_URL; DKIM, rate-limit accounting
 *               (a global policy far above the load) and the event log on;
 *   - raw pool: the same N messages composed with the same code (Mailroom's compose(), i.e.
 *               nodemailer's MailComposer), DKIM-signed with Mailroom's own dkimSignature() and an
 *               RSA-2048 key of the same kind, sent by a nodemailer pool with the relay transport's
 *               settings (pool defaults: 5 connections, 100 messages per connection), C at a time.
 *               Measured before Mailroom starts and again after it stops; the ratio uses the mean.
 *
 * The sink (bench/sink.ts) and Mailroom are child processes; this process is the load generator
 * (and, for the raw pool, the sending application). See bench/README.md for how to read the output.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { cpus } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import nodemailer, { type Transporter } from 'nodemailer';
import { compose } from '../src/outbound/compose.ts';
import { dkimSignature, generateDkimKey, type DkimKey } from '../src/outbound/dkim.ts';
import {
  ADMIN_TOKEN, addCleanup, cleanEnv, type Column, commCpu, DEFAULT_DATABASE_URL, DOMAIN, type Engine, engineOption, failureNote, fixed,
  HOSTNAME, int0, intOption, loadAverage, LOREM, machineSummary, parseCommandLine, parseSize, pct, percentile, printTableHeader,
  printTableRow, processCpuSeconds, profileDirOption, ROOT, runBench, say, sayMailroomLog, type Size, sleep, spawnChild,
  startMailroomProcess, type ThreadCpu, threadCpu, truthy,
} from './common.ts';
import type { SinkStats } from './sink.ts';

const SINK_SCRIPT = path.join(ROOT, 'bench', 'sink.ts');
const RCPT_DOMAIN = 'bench-sink.example';

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

const USAGE = `usage: node bench/outbound.ts [options]   (every option also as an environment variable)
  --n N               messages per measured run                     (BENCH_N, default 5000)
  --c C               concurrent HTTP clients / raw-pool senders    (BENCH_C, default 20)
  --engine E          embedded | postgres                           (BENCH_ENGINE, default embedded)
  --size S            text body size, e.g. 2k, 10k                  (BENCH_SIZE, default 2k)
  --warmup W          warm-up messages through each path            (BENCH_WARMUP, default 200)
  --verify V          sends checked through GET /v1/messages/{id} at the end: a number, or "all"
                                                                    (BENCH_VERIFY, default 200)
  --no-raw-after      measure the raw pool only before Mailroom     (BENCH_RAW_AFTER=0)
  --drain-timeout S   give up waiting for the sink after S s        (BENCH_DRAIN_TIMEOUT, default 900)
  --database-url U    PostgreSQL for --engine postgres              (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test)
  --sink-early-talker-delay  keep smtp-server's 100 ms greeting delay in the sink (BENCH_SINK_DELAY=1)
  --profile DIR       run Mailroom with node --cpu-prof, profiles written to DIR at its exit (BENCH_PROFILE)
  BENCH_MAILROOM_NODE_OPTIONS   NODE_OPTIONS for the Mailroom child only (experiments)`;

interface Options {
  n: number;
  c: number;
  engine: Engine;
  size: Size;
  warmup: number;
  verify: number;
  rawAfter: boolean;
  drainTimeoutMs: number;
  databaseUrl: string;
  sinkDelay: boolean;
  profileDir: string | null;
}

function parseOptions(): Options {
  const values = parseCommandLine(USAGE, {
    n: { type: 'string' },
    c: { type: 'string' },
    engine: { type: 'string' },
    size: { type: 'string' },
    warmup: { type: 'string' },
    verify: { type: 'string' },
    'no-raw-after': { type: 'boolean' },
    'drain-timeout': { type: 'string' },
    'database-url': { type: 'string' },
    'sink-early-talker-delay': { type: 'boolean' },
    profile: { type: 'string' },
  });
  const env = process.env;
  const engine = engineOption(values.engine ?? env.BENCH_ENGINE ?? 'embedded');
  const verifyRaw = values.verify ?? env.BENCH_VERIFY ?? '200';
  const n = intOption('n', values.n ?? env.BENCH_N, 5_000, 1);
  return {
    n,
    c: intOption('c', values.c ?? env.BENCH_C, 20, 1),
    engine,
    size: parseSize(values.size ?? env.BENCH_SIZE ?? '2k', 100, '2k, 10k'),
    warmup: intOption('warmup', values.warmup ?? env.BENCH_WARMUP, 200, 0),
    verify: verifyRaw.toLowerCase() === 'all' ? Infinity : intOption('verify', verifyRaw, 200, 0),
    rawAfter: !(values['no-raw-after'] || ['0', 'false', 'no'].includes((env.BENCH_RAW_AFTER ?? '').toLowerCase())),
    drainTimeoutMs: intOption('drain-timeout', values['drain-timeout'] ?? env.BENCH_DRAIN_TIMEOUT, 900, 1) * 1000,
    databaseUrl: values['database-url'] ?? env.BENCH_DATABASE_URL ?? DEFAULT_DATABASE_URL,
    sinkDelay: Boolean(values['sink-early-talker-delay']) || truthy(env.BENCH_SINK_DELAY),
    profileDir: profileDirOption(values.profile ?? env.BENCH_PROFILE),
  };
}

// ---------------------------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------------------------

/** Epoch milliseconds with sub-millisecond resolution; the sink stamps its messages the same way. */
const epochNow = () => performance.timeOrigin + performance.now();

interface CpuSnapshot { at: number; self: NodeJS.CpuUsage; mailroom: number; sink: number; postgres: number; threads: Map<string, ThreadCpu> }
interface CpuUse { wallS: number; self: number; mailroom: number; sink: number; postgres: number; threads: ThreadCpu[] }

function cpuSnapshot(mailroomPid: number | undefined, sinkPid: number, postgres: boolean): CpuSnapshot {
  return {
    at: performance.now(), self: process.cpuUsage(), mailroom: processCpuSeconds(mailroomPid), sink: processCpuSeconds(sinkPid),
    postgres: postgres ? commCpu('postgres') : NaN, threads: threadCpu(mailroomPid),
  };
}

function cpuSince(s: CpuSnapshot, mailroomPid: number | undefined, sinkPid: number, postgres: boolean): CpuUse {
  const now = cpuSnapshot(mailroomPid, sinkPid, postgres);
  const self = process.cpuUsage(s.self);
  const threads = [...now.threads].map(([tid, t]) => ({ name: t.name, cpu: t.cpu - (s.threads.get(tid)?.cpu ?? 0) })).sort((a, b) => b.cpu - a.cpu);
  return {
    wallS: (now.at - s.at) / 1000, self: (self.user + self.system) / 1e6, mailroom: now.mailroom - s.mailroom, sink: now.sink - s.sink,
    postgres: now.postgres - s.postgres, threads,
  };
}

// ---------------------------------------------------------------------------------------------
// The sink (bench/sink.ts), over its IPC channel
// ---------------------------------------------------------------------------------------------

interface Sink {
  port: number;
  pid: number;
  stats(): Promise<SinkStats>;
  /** Resolves with the stats once `group` has counted `count` messages; rejects after `timeoutMs`. */
  waitFor(group: string, count: number, timeoutMs: number, progress?: (s: SinkStats) => void): Promise<SinkStats>;
  stop(): Promise<void>;
}

async function startSink(o: Options): Promise<Sink> {
  const child = spawnChild('sink', process.execPath, [SINK_SCRIPT, '0', ...(o.sinkDelay ? ['--early-talker-delay'] : [])], cleanEnv({ dropNodeOptions: true }), { ipc: true });
  addCleanup(() => child.stop(5000));
  const m = await child.waitForOutput(/listening (\d+)/, 30_000);
  let nextId = 1;
  const pending = new Map<number, (s: SinkStats) => void>();
  child.proc.on('message', (msg: { id: number; stats: SinkStats }) => {
    const r = pending.get(msg.id);
    pending.delete(msg.id);
    r?.(msg.stats);
  });
  const request = (body: Record<string, unknown>) => new Promise<SinkStats>((resolve, reject) => {
    if (child.exited) return reject(new Error(`the sink exited:\n${child.output().slice(-2000)}`));
    const id = nextId++;
    pending.set(id, resolve);
    child.proc.send({ id, ...body });
  });
  return {
    port: Number(m[1]),
    pid: child.pid,
    stats: () => request({ cmd: 'stats' }),
    async waitFor(group, count, timeoutMs, progress) {
      let timer: NodeJS.Timeout | undefined;
      let ticker: NodeJS.Timeout | undefined;
      try {
        return await Promise.race([
          request({ cmd: 'wait', group, count }),
          new Promise<never>((_, reject) => {
            timer = setTimeout(async () => {
              const s = await request({ cmd: 'stats' }).catch(() => null);
              reject(new Error(`the sink counted ${s?.groups[group]?.count ?? 0} of ${count} "${group}" messages after ${timeoutMs / 1000} s`));
            }, timeoutMs);
            if (progress) ticker = setInterval(() => { void request({ cmd: 'stats' }).then(progress, () => {}); }, 3000);
          }),
        ]);
      } finally {
        clearTimeout(timer);
        clearInterval(ticker);
      }
    },
    stop: () => child.stop(5000),
  };
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

/** Plain text of exactly `bytes` bytes (LF line ends, lines of at most 72 characters). */
function textOfSize(bytes: number): string {
  const words = LOREM.trim().split(' ');
  let s = '';
  let line = '';
  for (let i = 0; s.length + line.length < bytes; i++) {
    const w = words[i % words.length];
    if (line && line.length + 1 + w.length > 72) { s += `${line}\n`; line = w; }
    else line = line ? `${line} ${w}` : w;
  }
  return (s + line).slice(0, bytes);
}

interface Content { to: string[]; subject: string; text: string }

/** Message `seq` of group `group`: one recipient on the sink's domain, a distinct subject and first line. */
function contentFactory(bytes: number, tag: string): (group: string, seq: number) => Content {
  const filler = textOfSize(bytes);
  return (group, seq) => {
    const first = `Message ${seq} of ${group}, run ${tag}.\n`;
    return { to: [`${group}-${seq}@${RCPT_DOMAIN}`], subject: `bench ${group} ${seq}`, text: first + filler.slice(first.length) };
  };
}

// ---------------------------------------------------------------------------------------------
// The HTTP load (Mailroom)
// ---------------------------------------------------------------------------------------------

interface HttpReply { status: number; headers: http.IncomingHttpHeaders; body: string }

function httpClient(base: string, maxSockets: number) {
  const url = new URL(base);
  const agent = new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
  const request = (method: string, p: string, body?: string, headers: Record<string, string> = {}) => new Promise<HttpReply>((resolve, reject) => {
    const req = http.request({
      agent, host: url.hostname, port: url.port, method, path: p,
      headers: {
        authorization: `Bearer ${ADMIN_TOKEN}`,
        ...(body !== undefined ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } : {}),
        ...headers,
      },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
  const json = async <T = any>(method: string, p: string, body?: unknown): Promise<T> => {
    const r = await request(method, p, body === undefined ? undefined : JSON.stringify(body));
    if (r.status < 200 || r.status >= 300) throw new Error(`${method} ${p}: HTTP ${r.status} ${r.body.slice(0, 300)}`);
    return (r.body ? JSON.parse(r.body) : null) as T;
  };
  return { request, json, close: () => agent.destroy() };
}
type HttpClient = ReturnType<typeof httpClient>;

interface PhaseResult {
  label: string;
  group: string;
  n: number;
  ok: number;
  failed: number;
  failures: Map<string, number>;
  /** epoch ms of the first request / compose */
  startedAt: number;
  /** epoch ms of the last answer (202, or sendMail resolved) */
  submittedAt: number;
  /** per-message latency in ms, sorted: POST → 202 (Mailroom), compose + sign + sendMail() resolved (raw pool) */
  latencies: Float64Array;
  ids: string[];
  sink?: SinkStats['groups'][string];
  deliveredS?: number;
  cpu?: CpuUse;
  error?: string;
}

/**
 * Runs `one(seq)` for seq = 0…n-1 with `c` in flight, from a shared counter. Each call resolves with
 * null (success) or a short failure reason; progress is reported every 3 s.
 */
async function drive(label: string, group: string, n: number, c: number, one: (seq: number, r: PhaseResult) => Promise<string | null>, progress?: (r: PhaseResult, elapsedMs: number) => void): Promise<PhaseResult> {
  const r: PhaseResult = { label, group, n, ok: 0, failed: 0, failures: new Map(), startedAt: 0, submittedAt: 0, latencies: new Float64Array(n), ids: [] };
  let next = 0;
  const lat: number[] = [];
  const t0 = performance.now();
  r.startedAt = epochNow();
  const timer = progress ? setInterval(() => progress(r, performance.now() - t0), 3000) : null;
  const worker = async () => {
    for (let seq = next++; seq < n; seq = next++) {
      const t = performance.now();
      let why: string | null;
      try {
        why = await one(seq, r);
      } catch (err) {
        why = ((err as Error).message ?? String(err)).split('\n')[0].slice(0, 120);
      }
      if (why === null) { lat.push(performance.now() - t); r.ok++; }
      else { r.failed++; r.failures.set(why, (r.failures.get(why) ?? 0) + 1); }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(c, n) }, worker));
  } finally {
    if (timer) clearInterval(timer);
  }
  r.submittedAt = epochNow();
  r.latencies = Float64Array.from(lat).sort();
  return r;
}

function submitter(api: HttpClient, inboxId: string, content: (group: string, seq: number) => Content, tag: string, group: string) {
  return async (seq: number, r: PhaseResult): Promise<string | null> => {
    const body = JSON.stringify(content(group, seq));
    const res = await api.request('POST', `/v1/inboxes/${inboxId}/messages`, body, { 'idempotency-key': `${tag}-${group}-${seq}` });
    if (res.status !== 202) return `HTTP ${res.status} ${res.body.slice(0, 100)}`;
    const id = /"id"\s*:\s*"([^"]+)"/.exec(res.body)?.[1];
    if (id) r.ids[seq] = id;
    return null;
  };
}

// ---------------------------------------------------------------------------------------------
// The raw nodemailer pool
// ---------------------------------------------------------------------------------------------

function rawTransport(sinkPort: number): Transporter {
  // The relay transport's settings (src/outbound/transports.ts: smtp://host:port?pool=true and
  // `name`), i.e. nodemailer's pool defaults, maxConnections 5 and maxMessages 100, written out.
  return nodemailer.createTransport({
    host: '127.0.0.1', port: sinkPort, secure: false, ignoreTLS: true, name: HOSTNAME,
    pool: true, maxConnections: 5, maxMessages: 100,
  } as never);
}

function rawSender(t: Transporter, key: DkimKey, from: string, content: (group: string, seq: number) => Content, tag: string, group: string) {
  const mailbox = { address: from, name: '' };
  return async (seq: number): Promise<string | null> => {
    // What Mailroom does to a send request before storing it: compose with nodemailer's
    // MailComposer (same code) and sign with the same DKIM function, then hand it to the pool.
    const composed = await compose(content(group, seq), mailbox, { inReplyTo: null, references: [] }, { maxSize: 10 * 1024 * 1024, traceId: `trc_${tag}${seq}` });
    const raw = Buffer.concat([await dkimSignature(composed.raw, DOMAIN, key), composed.raw]);
    await t.sendMail({ envelope: { from: `bounces+${tag}-${seq}@${DOMAIN}`, to: composed.recipients.map((x) => x.address) }, raw });
    return null;
  };
}

// ---------------------------------------------------------------------------------------------
// Mailroom
// ---------------------------------------------------------------------------------------------

interface MailroomServer {
  pid: number;
  httpBase: string;
  api: HttpClient;
  logSince(): string;
  stop(): Promise<void>;
}

async function startMailroom(o: Options, sinkPort: number): Promise<MailroomServer> {
  const mr = await startMailroomProcess({
    engine: o.engine,
    databaseUrl: o.databaseUrl,
    profileDir: o.profileDir,
    dataDirPrefix: 'mailroom-bench-out-',
    baseEnv: cleanEnv({ dropNodeOptions: true }),
    env: {
      MAILROOM_SMTP_RELAY_URL: `smtp://127.0.0.1:${sinkPort}`,
      // Nothing here needs DNS (the relay takes every foreign recipient); make sure nothing asks.
      MAILROOM_DNS_SERVERS: '127.0.0.1:1',
    },
    banner: /HTTP API\s+(http:\/\/\S+?:\d+)\b/,
  });
  const httpBase = mr.banner[1];
  const api = httpClient(httpBase, 256);
  const stop = async () => {
    api.close();
    await mr.stop();
  };
  return { pid: mr.child.pid, httpBase, api, logSince: mr.logSince, stop };
}

// ---------------------------------------------------------------------------------------------
// Runs
// ---------------------------------------------------------------------------------------------

function describe(r: PhaseResult): string {
  const wall = (r.submittedAt - r.startedAt) / 1000;
  return `${int0(r.ok)}/${int0(r.n)} in ${fixed(wall, 2)} s = ${int0(r.ok / wall)}/s; latency p50 ${fixed(percentile(r.latencies, 50), 1)} ms, p99 ${fixed(percentile(r.latencies, 99), 1)} ms` +
    failureNote(r.failed, r.failures);
}

/** Waits until the sink has counted every successful message of `r`, and fills in the end-to-end figures. */
async function drain(sink: Sink, r: PhaseResult, o: Options, what: string): Promise<void> {
  say(`    waiting until the sink has counted all ${int0(r.ok)} ${what}…`);
  const stats = await sink.waitFor(r.group, r.ok, o.drainTimeoutMs, (s) => {
    const got = s.groups[r.group]?.count ?? 0;
    const secs = (epochNow() - r.startedAt) / 1000;
    say(`    … sink ${int0(got)}/${int0(r.ok)}, ${fixed(secs, 1)} s since the first request, ${int0(got / secs)}/s`);
  });
  r.sink = stats.groups[r.group];
  r.deliveredS = (r.sink.lastAt - r.startedAt) / 1000;
}

async function runRaw(label: string, group: string, sink: Sink, t: Transporter, key: DkimKey, from: string, content: (group: string, seq: number) => Content, tag: string, o: Options): Promise<PhaseResult> {
  say(`  raw nodemailer pool (${label}): N=${int0(o.n)}, C=${o.c}`);
  if (o.warmup > 0 && group === 'raw1') {
    const warm = await drive('raw warm-up', 'rawwarm', o.warmup, o.c, rawSender(t, key, from, content, tag, 'rawwarm'));
    if (warm.failed) say(`    warm-up: ${describe(warm)}`);
    await sink.waitFor('rawwarm', warm.ok, o.drainTimeoutMs);
  }
  const cpu0 = cpuSnapshot(undefined, sink.pid, false);
  const r = await drive(`raw nodemailer pool (${label})`, group, o.n, o.c, rawSender(t, key, from, content, tag, group), (x, ms) =>
    say(`    … ${int0(x.ok)}/${int0(o.n)} handed to the pool and sent${x.failed ? `, ${int0(x.failed)} failed` : ''}, ${int0(x.ok / (ms / 1000))}/s`));
  say(`    ${describe(r)}`);
  await drain(sink, r, o, 'messages');
  r.cpu = cpuSince(cpu0, undefined, sink.pid, false);
  say(`    delivered: ${int0(r.sink!.count)} in ${fixed(r.deliveredS!, 2)} s = ${int0(r.sink!.count / r.deliveredS!)}/s`);
  return r;
}

interface MailroomRun {
  result: PhaseResult;
  checks: string[];
  failedChecks: number;
}

async function runMailroom(o: Options, sink: Sink, content: (group: string, seq: number) => Content, tag: string): Promise<MailroomRun> {
  say(`  Mailroom (${o.engine}, fresh ${o.engine === 'postgres' ? 'schema' : 'data directory'}): N=${int0(o.n)}, C=${o.c}`);
  const t0 = performance.now();
  const mr = await startMailroom(o, sink.port);
  const checks: string[] = [];
  let failedChecks = 0;
  const check = (ok: boolean, text: string) => { checks.push(`${ok ? 'ok  ' : 'FAIL'} ${text}`); if (!ok) failedChecks++; };
  try {
    say(`    started in ${fixed((performance.now() - t0) / 1000, 1)} s (${mr.httpBase}, relay smtp://127.0.0.1:${sink.port})`);
    const inbox = await mr.api.json<{ id: string; address: string }>('POST', '/v1/inboxes', { username: 'bench' });
    // A shared limit far above the load: admission is counted (and checked) for every recipient.
    const limit = await mr.api.json<{ id: string }>('POST', '/v1/limits', { scope: 'global', max: 10_000_000, window: 'minute' });
    const domains = await mr.api.json<{ data: { name: string; dkim_selector: string }[] }>('GET', '/v1/domains').catch(() => null);
    const selector = domains?.data.find((d) => d.name === DOMAIN)?.dkim_selector;
    say(`    inbox ${inbox.address}; global limit 10,000,000/minute; DKIM ${selector ? `selector ${selector} for ${DOMAIN}` : `key of ${DOMAIN}`}`);

    if (o.warmup > 0) {
      const warm = await drive('mailroom warm-up', 'mrwarm', o.warmup, o.c, submitter(mr.api, inbox.id, content, tag, 'mrwarm'));
      if (warm.failed) say(`    warm-up: ${describe(warm)}`);
      await sink.waitFor('mrwarm', warm.ok, o.drainTimeoutMs);
      // The last `sent` commits come just after the sink's 250: let the worker go idle.
      await sleep(1000);
    }

    const cpu0 = cpuSnapshot(mr.pid, sink.pid, o.engine === 'postgres');
    const r = await drive(`Mailroom (${o.engine})`, 'mr', o.n, o.c, submitter(mr.api, inbox.id, content, tag, 'mr'), (x, ms) => {
      void sink.stats().then((s) => say(`    … ${int0(x.ok)}/${int0(o.n)} accepted (202)${x.failed ? `, ${int0(x.failed)} failed` : ''}, ${int0(x.ok / (ms / 1000))}/s; sink ${int0(s.groups.mr?.count ?? 0)}`), () => {});
    });
    const submitCpu = cpuSince(cpu0, mr.pid, sink.pid, o.engine === 'postgres');
    say(`    API: ${describe(r)}`);
    say(`    CPU during the submit phase (${fixed(submitCpu.wallS, 1)} s): Mailroom ${pct(submitCpu.mailroom, submitCpu.wallS)}, sink ${pct(submitCpu.sink, submitCpu.wallS)}, ` +
      `load generator ${pct(submitCpu.self, submitCpu.wallS)}${o.engine === 'postgres' ? `, postgres ${pct(submitCpu.postgres, submitCpu.wallS)}` : ''}`);
    try {
      await drain(sink, r, o, 'accepted messages');
    } catch (err) {
      r.error = (err as Error).message;
      say(`    ${r.error}`);
    }
    r.cpu = cpuSince(cpu0, mr.pid, sink.pid, o.engine === 'postgres');
    if (r.sink && r.deliveredS) {
      say(`    delivered: ${int0(r.sink.count)} in ${fixed(r.deliveredS, 2)} s = ${int0(r.sink.count / r.deliveredS)}/s end to end ` +
        `(the last 202 came ${fixed((r.submittedAt - r.startedAt) / 1000, 2)} s after the first request, the last delivery ${fixed((r.sink.lastAt - r.submittedAt) / 1000, 2)} s after that)`);
      const busiest = r.cpu.threads.filter((t) => t.cpu / r.cpu!.wallS >= 0.02).slice(0, 5);
      say(`    Mailroom threads over the whole run (${fixed(r.cpu.wallS, 1)} s): ${busiest.map((t) => `${t.name} ${pct(t.cpu, r.cpu!.wallS)}`).join(', ') || 'n/a'}`);
    }

    // ---- Untimed checks ----
    if (r.sink) {
      check(r.sink.distinct === r.ok && r.sink.count === r.ok, `sink: ${int0(r.sink.count)} messages, ${int0(r.sink.distinct)} distinct recipients, for ${int0(r.ok)} accepted sends (no loss, no duplicate)`);
      const signed = r.sink.dkim[DOMAIN] ?? 0;
      check(signed === r.sink.count, `DKIM: ${int0(signed)} of ${int0(r.sink.count)} delivered messages carry a DKIM-Signature with d=${DOMAIN}`);
    }
    const ids = r.ids.filter(Boolean);
    const sample = o.verify >= ids.length ? ids : Array.from({ length: o.verify }, (_, i) => ids[Math.floor((i * ids.length) / o.verify)]);
    if (sample.length) {
      const deadline = performance.now() + 30_000;
      let sent = 0;
      const statuses = new Map<string, number>();
      for (;;) {
        statuses.clear();
        sent = 0;
        let k = 0;
        await Promise.all(Array.from({ length: Math.min(o.c, sample.length) }, async () => {
          for (let i = k++; i < sample.length; i = k++) {
            const m = await mr.api.json<{ delivery: { status: string } | null }>('GET', `/v1/messages/${sample[i]}`);
            const s = m.delivery?.status ?? 'none';
            statuses.set(s, (statuses.get(s) ?? 0) + 1);
            if (s === 'sent') sent++;
          }
        }));
        if (sent === sample.length || performance.now() > deadline) break;
        await sleep(500);
      }
      check(sent === sample.length, `API: ${int0(sent)} of ${int0(sample.length)} sends${sample.length === ids.length ? '' : ' (an even sample)'} show delivery.status "sent"` +
        (sent === sample.length ? '' : ` (${[...statuses].map(([s, c]) => `${c} ${s}`).join(', ')})`));
    }
    // Idempotency: the same key and body again returns the original message and sends nothing.
    const replays = Math.min(10, r.ok);
    let replayed = 0;
    const firstOk = r.ids.map((id, seq) => ({ id, seq })).filter((x) => x.id).slice(0, replays);
    for (const { id, seq } of firstOk) {
      const res = await mr.api.request('POST', `/v1/inboxes/${inbox.id}/messages`, JSON.stringify(content('mr', seq)), { 'idempotency-key': `${tag}-mr-${seq}` });
      if (res.status === 202 && res.headers['idempotent-replayed'] === 'true' && res.body.includes(id)) replayed++;
    }
    if (replays) {
      await sleep(1500);
      const after = (await sink.stats()).groups.mr?.count ?? 0;
      check(replayed === firstOk.length && after === (r.sink?.count ?? after), `idempotency: ${replayed} of ${firstOk.length} repeated requests replayed (same message, Idempotent-Replayed: true); sink still at ${int0(after)}`);
    }
    const limits = await mr.api.json<{ data: { id: string; usage: { used: number }[] }[] }>('GET', '/v1/limits');
    const used = limits.data.find((l) => l.id === limit.id)?.usage.reduce((a, u) => a + u.used, 0) ?? 0;
    const submitted = r.ok + (o.warmup > 0 ? o.warmup : 0);
    // A sliding one-minute window: after a run longer than a minute it holds only the last minute's sends.
    check(used > 0 && used <= submitted, `rate limits: the global policy counts ${int0(used)} sends in its current one-minute window ` +
      `(${int0(submitted)} sent in all, warm-up included${(epochNow() - r.startedAt) > 60_000 ? '; the run took longer than the window' : ''})`);
    return { result: r, checks, failedChecks };
  } finally {
    sayMailroomLog(mr.logSince());
    await mr.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

function printTable(rows: PhaseResult[], o: Options): void {
  const cols: Column[] = [
    { h: 'path', w: 28, r: false },
    { h: 'N', w: 6, r: true },
    { h: 'ok', w: 6, r: true },
    { h: 'failed', w: 6, r: true },
    { h: 'accepted/s', w: 10, r: true },
    { h: 'p50 ms', w: 7, r: true },
    { h: 'p99 ms', w: 7, r: true },
    { h: 'e2e s', w: 7, r: true },
    { h: 'delivered/s', w: 11, r: true },
    { h: 'msg bytes', w: 9, r: true },
    { h: 'app CPU', w: 7, r: true },
    { h: 'CPU ms/msg', w: 10, r: true },
    { h: 'sink CPU', w: 8, r: true },
    { h: 'cli CPU', w: 7, r: true },
  ];
  say('');
  say(`${o.size.label} text body, C=${o.c}, N=${int0(o.n)}`);
  printTableHeader(cols);
  for (const r of rows) {
    const mailroom = r.group === 'mr';
    const submitS = (r.submittedAt - r.startedAt) / 1000;
    const cpu = r.cpu;
    const cells = [
      r.label,
      int0(r.n), int0(r.ok), int0(r.failed),
      mailroom ? int0(r.ok / submitS) : '-',
      fixed(percentile(r.latencies, 50), 1),
      fixed(percentile(r.latencies, 99), 1),
      r.deliveredS !== undefined ? fixed(r.deliveredS, 2) : 'timeout',
      r.deliveredS !== undefined && r.sink ? int0(r.sink.count / r.deliveredS) : '-',
      r.sink ? int0(r.sink.bytes / r.sink.count) : '-',
      // The sending application: Mailroom's process (+ PostgreSQL), or this process for the raw pool.
      cpu ? pct(appCpuS(r), cpu.wallS) : '-',
      // The same CPU per message: what a send costs the machine, whatever the concurrency.
      cpu && r.ok ? fixed((appCpuS(r) * 1000) / r.ok, 2) : '-',
      cpu ? pct(cpu.sink, cpu.wallS) : '-',
      cpu && mailroom ? pct(cpu.self, cpu.wallS) : '-',
    ];
    printTableRow(cells, cols);
  }
  say('');
  say('accepted/s = 202s ÷ wall time of the submit phase (first POST → last 202); p50/p99 = POST → 202 for Mailroom,');
  say('compose + DKIM signing + sendMail() resolved for the raw pool (waiting for a free pool connection included);');
  say('e2e s = first request → the sink accepting the last message; delivered/s = N ÷ e2e s;');
  say('msg bytes = mean size on the wire; app CPU = the sender (Mailroom' + (o.engine === 'postgres' ? ' + all postgres processes' : '') + '; this process for the raw');
  say(`pool), sink CPU, cli CPU = the HTTP load generator, each ÷ e2e wall time (100% = one core; ${cpus().length} cores here);`);
  say('CPU ms/msg = the sender\'s CPU time over the run ÷ messages sent.');
}

/** CPU seconds of the sending application over a run: Mailroom's process (+ PostgreSQL's), or this process for the raw pool. */
function appCpuS(r: PhaseResult): number {
  const cpu = r.cpu!;
  return r.group === 'mr' ? cpu.mailroom + (Number.isFinite(cpu.postgres) ? cpu.postgres : 0) : cpu.self;
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const o = parseOptions();
  const started = performance.now();
  const tag = randomBytes(4).toString('hex');
  say(`Mailroom outbound benchmark — ${machineSummary()}`);
  say(`  N = ${int0(o.n)}, C = ${o.c}, text body ${o.size.label} (${int0(o.size.bytes)} bytes), ${o.warmup} warm-up messages per path (not measured); Mailroom engine: ${o.engine}`);
  say(`  load average at start: ${loadAverage()} (other processes on this machine skew every number below)`);

  const sink = await startSink(o);
  say(`  sink (bench/sink.ts, smtp-server discard${o.sinkDelay ? ', 100 ms greeting delay kept' : ', no greeting delay'}) on 127.0.0.1:${sink.port}, pid ${sink.pid}`);
  const content = contentFactory(o.size.bytes, tag);
  const key = generateDkimKey();
  const from = `bench@${DOMAIN}`;
  const transport = rawTransport(sink.port);
  addCleanup(async () => transport.close());

  const rows: PhaseResult[] = [];
  const runs: { raw: PhaseResult[]; mailroom: MailroomRun | null } = { raw: [], mailroom: null };
  say('');
  runs.raw.push(await runRaw('before', 'raw1', sink, transport, key, from, content, tag, o));
  rows.push(runs.raw[0]);
  say('');
  try {
    runs.mailroom = await runMailroom(o, sink, content, tag);
    rows.push(runs.mailroom.result);
  } catch (err) {
    say(`  Mailroom run failed: ${(err as Error).message.split('\n').slice(0, 6).join(' | ')}`);
    process.exitCode = 1;
  }
  if (o.rawAfter) {
    say('');
    runs.raw.push(await runRaw('after', 'raw2', sink, transport, key, from, content, tag, o));
    rows.push(runs.raw[1]);
  }
  transport.close();
  const sinkStats = await sink.stats();
  await sink.stop();

  say('');
  say('================================================================================================');
  say(`Results (total bench time ${fixed((performance.now() - started) / 60_000, 1)} min; load average at the end: ${loadAverage()}; ` +
    `sink connections ${int0(sinkStats.connections)})`);
  printTable(rows, o);

  const rawRates = runs.raw.filter((r) => r.sink && r.deliveredS).map((r) => r.sink!.count / r.deliveredS!);
  const mr = runs.mailroom?.result;
  say('');
  if (mr?.sink && mr.deliveredS && rawRates.length && !mr.error) {
    const rawMean = rawRates.reduce((a, b) => a + b, 0) / rawRates.length;
    const e2e = mr.sink.count / mr.deliveredS;
    const ratio = e2e / rawMean;
    say(`Mailroom accepted/s at the API: ${int0(mr.ok / ((mr.submittedAt - mr.startedAt) / 1000))}; delivered/s end to end: ${int0(e2e)}`);
    say(`raw nodemailer pool delivered/s: ${rawRates.map(int0).join(' (before), ')}${rawRates.length > 1 ? ' (after)' : ''}; mean ${int0(rawMean)}`);
    say(`ratio end-to-end / raw pool: ${fixed(ratio, 2)} (target ≥ 0.70)`);
    say(ratio >= 0.7 ? 'TARGET MET' : 'TARGET MISSED');
  } else {
    say('ratio end-to-end / raw pool: n/a (the Mailroom run did not complete)');
    say('TARGET MISSED');
    process.exitCode = 1;
  }
  if (runs.mailroom) {
    say('');
    say('Checks (untimed, after the measured run):');
    for (const c of runs.mailroom.checks) say(`  ${c}`);
    if (runs.mailroom.failedChecks) process.exitCode = 1;
  }
  for (const r of runs.raw) {
    if (r.sink && (r.sink.dkim[DOMAIN] ?? 0) !== r.sink.count) say(`  note: raw pool (${r.label}): only ${r.sink.dkim[DOMAIN] ?? 0} of ${r.sink.count} messages signed`);
  }
}

runBench(main, 'stopping children and removing temporary data');
