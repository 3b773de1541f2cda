/**
 * `npm run bench:inbound` — inbound SMTP throughput of Mailroom against two references, in one run:
 *
 *   - bare:     smtp-server (the library Mailroom uses) discarding DATA: the protocol ceiling;
 *   - haraka:   Haraka 3 (single process, `queue/discard`), installed on demand outside the repo;
 *   - mailroom: `node bin/mailroom.js serve` with a fresh data directory (or a fresh PostgreSQL
 *               schema with `--engine postgres`), where `250` means durably stored.
 *
 * Every server is a child process; this process is only the load generator (a raw-socket SMTP
 * client, C connections, one transaction at a time per connection, no pipelining) and, for
 * Mailroom, the API poller that measures when every accepted message is parsed and readable.
 * See bench/README.md for how to read the output.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { cp, mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import net, { type AddressInfo } from 'node:net';
import { cpus, homedir, tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  ADMIN_TOKEN, addCleanup, cleanEnv, DEFAULT_DATABASE_URL, DOMAIN, type Column, type Engine, engineOption, failureNote, fixed, int0, intOption,
  loadAverage, LOREM, machineSummary, pad, parseCommandLine, parseSize, pct, percentile, printTableHeader, printTableRow,
  processCpuSeconds, profileDirOption, ROOT, runBench, say, sayMailroomLog, type Size, sleep, spawnChild, startMailroomProcess, truthy,
} from './common.ts';

const BARE_SCRIPT = path.join(ROOT, 'bench', 'bare-smtp.ts');
const SENDER = 'sender@bench-client.example';

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

type Mode = 'reused' | 'new';
type ServerName = 'bare' | 'haraka' | 'mailroom';

const USAGE = `usage: node bench/inbound.ts [options]   (every option also as an environment variable)
  --n N             messages per run, reused connections   (BENCH_N, default 10000)
  --n-new N         messages per run, new connection each  (BENCH_N_NEW, default 2000)
  --c C             concurrent connections                 (BENCH_C, default 10)
  --sizes LIST      message sizes, e.g. 2k,50k             (BENCH_SIZES, default 2k,50k)
  --modes LIST      reused,new                             (BENCH_MODES, default reused,new)
  --engine E        embedded | postgres                    (BENCH_ENGINE, default embedded)
  --servers LIST    bare,haraka,mailroom                   (BENCH_SERVERS, default all three)
  --skip-haraka     same as leaving haraka out of --servers (BENCH_SKIP_HARAKA=1)
  --warmup W        warm-up messages before each run       (BENCH_WARMUP, default 300)
  --parse-timeout S give up waiting for parsing after S s  (BENCH_PARSE_TIMEOUT, default 600)
  --database-url U  PostgreSQL for --engine postgres       (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test)
  --haraka-dir D    where Haraka is installed on demand    (BENCH_HARAKA_DIR, default ~/.cache/mailroom-bench/haraka)
  --profile DIR     run Mailroom with node --cpu-prof, profiles written to DIR at its exit (BENCH_PROFILE)
  BENCH_MAILROOM_NODE_OPTIONS   NODE_OPTIONS for the Mailroom child only (experiments, e.g. --import ./patch.mjs)`;

interface Options {
  n: number;
  nNew: number;
  c: number;
  sizes: Size[];
  modes: Mode[];
  engine: Engine;
  servers: ServerName[];
  warmup: number;
  parseTimeoutMs: number;
  databaseUrl: string;
  harakaDir: string;
  profileDir: string | null;
}

function list(s: string): string[] {
  return s.split(',').map((x) => x.trim()).filter(Boolean);
}

function parseOptions(): Options {
  const values = parseCommandLine(USAGE, {
    n: { type: 'string' },
    'n-new': { type: 'string' },
    c: { type: 'string' },
    sizes: { type: 'string' },
    modes: { type: 'string' },
    engine: { type: 'string' },
    servers: { type: 'string' },
    'skip-haraka': { type: 'boolean' },
    warmup: { type: 'string' },
    'parse-timeout': { type: 'string' },
    'database-url': { type: 'string' },
    'haraka-dir': { type: 'string' },
    profile: { type: 'string' },
  });
  const env = process.env;
  const modes = list(values.modes ?? env.BENCH_MODES ?? 'reused,new');
  for (const m of modes) if (m !== 'reused' && m !== 'new') throw new Error(`unknown mode "${m}" (reused, new)`);
  const engine = engineOption(values.engine ?? env.BENCH_ENGINE ?? 'embedded');
  let servers = list(values.servers ?? env.BENCH_SERVERS ?? 'bare,haraka,mailroom');
  for (const s of servers) if (!['bare', 'haraka', 'mailroom'].includes(s)) throw new Error(`unknown server "${s}" (bare, haraka, mailroom)`);
  const skipHaraka = values['skip-haraka'] || truthy(env.BENCH_SKIP_HARAKA);
  if (skipHaraka) servers = servers.filter((s) => s !== 'haraka');
  return {
    n: intOption('n', values.n ?? env.BENCH_N, 10_000, 1),
    nNew: intOption('n-new', values['n-new'] ?? env.BENCH_N_NEW, 2_000, 1),
    c: intOption('c', values.c ?? env.BENCH_C, 10, 1),
    sizes: list(values.sizes ?? env.BENCH_SIZES ?? '2k,50k').map((s) => parseSize(s, 512, '2k, 50k, 1m')),
    modes: modes as Mode[],
    engine,
    // Always in the same order, so each run's references are measured just before Mailroom.
    servers: (['bare', 'haraka', 'mailroom'] as const).filter((s) => servers.includes(s)),
    warmup: intOption('warmup', values.warmup ?? env.BENCH_WARMUP, 300, 0),
    parseTimeoutMs: intOption('parse-timeout', values['parse-timeout'] ?? env.BENCH_PARSE_TIMEOUT, 600, 1) * 1000,
    databaseUrl: values['database-url'] ?? env.BENCH_DATABASE_URL ?? DEFAULT_DATABASE_URL,
    harakaDir: values['haraka-dir'] ?? env.BENCH_HARAKA_DIR ?? path.join(homedir(), '.cache', 'mailroom-bench', 'haraka'),
    profileDir: profileDirOption(values.profile ?? env.BENCH_PROFILE),
  };
}

// ---------------------------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------------------------

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Resolves once something on `port` answers with a 220 greeting. */
async function waitForGreeting(port: number, timeoutMs: number, alive: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      let buf = '';
      const done = (v: boolean) => { s.destroy(); resolve(v); };
      s.setTimeout(3000, () => done(false));
      s.on('error', () => done(false));
      s.on('close', () => done(false));
      s.on('data', (d) => {
        buf += d.toString('latin1');
        if (/^220[ -]/.test(buf)) { s.write('QUIT\r\n'); done(true); }
        else if (buf.includes('\n')) done(false);
      });
    });
    if (ok) return;
    if (!alive()) throw new Error('the process exited before it answered on its SMTP port');
    if (Date.now() > deadline) throw new Error(`no SMTP greeting on port ${port} after ${timeoutMs / 1000} s`);
    await sleep(200);
  }
}

/**
 * How long one small append + fdatasync takes where Mailroom's temporary data directories live.
 * In embedded mode every `250` waits for one (group-committed) fdatasync, so with C connections
 * and no pipelining the durable accept rate cannot exceed about C / (fdatasync + round trips).
 */
async function probeFdatasync(dir: string, rounds = 200): Promise<{ p50: number; p99: number }> {
  const file = path.join(dir, `mailroom-bench-fsync-${process.pid}.tmp`);
  const fh = await open(file, 'w');
  const buf = Buffer.alloc(2048, 0x61);
  const times = new Float64Array(rounds);
  try {
    for (let i = 0; i < rounds; i++) {
      const t = performance.now();
      await fh.write(buf, 0, buf.length, i * buf.length);
      await fh.datasync();
      times[i] = performance.now() - t;
    }
  } finally {
    await fh.close();
    await rm(file, { force: true });
  }
  times.sort();
  return { p50: percentile(times, 50), p99: percentile(times, 99) };
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

/** Text lines of at most 72 characters, totalling exactly `bytes` bytes including CRLFs. */
function textOfSize(bytes: number): string {
  const lines: string[] = [];
  let left = bytes;
  let offset = 0;
  while (left > 0) {
    if (left <= 2) { lines.push(' '.repeat(Math.max(0, left - 2))); left = 0; break; }
    const len = Math.min(72, left - 2);
    let line = '';
    while (line.length < len) line += LOREM;
    line = (line.slice(offset % LOREM.length) + line).slice(0, len);
    offset += 7;
    // Never a line starting with "." (no dot-stuffing needed) or ending in a space (some servers trim).
    line = line.replace(/^[.\s]/, 'x').replace(/\s$/, 'x');
    lines.push(line);
    left -= len + 2;
  }
  return lines.map((l) => `${l}\r\n`).join('');
}

/**
 * Builds the DATA payload of message `seq` (terminating "." included), exactly `bytes` bytes of
 * message. Up to 8 KB a plain-text message; above, multipart/mixed with a short text part and a
 * base64 attachment whose first line encodes the sequence number, so that every message (and every
 * attachment) is distinct and nothing is deduplicated by content.
 */
function messageFactory(bytes: number, to: string, label: string, tag: string): (seq: number) => Buffer {
  const date = new Date().toUTCString().replace('GMT', '+0000');
  const head = (seq: string, contentType: string) =>
    `From: Bench Sender <${SENDER}>\r\nTo: <${to}>\r\nSubject: bench ${label} ${seq}\r\nDate: ${date}\r\n` +
    `Message-ID: <${seq}.${tag}@bench-client.example>\r\nMIME-Version: 1.0\r\n${contentType}\r\n`;
  const seqText = (seq: number) => String(seq).padStart(7, '0');
  const terminator = Buffer.from('.\r\n');

  if (bytes <= 8 * 1024) {
    const ct = 'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n';
    const headLen = Buffer.byteLength(head('0000000', ct));
    const body = Buffer.from(textOfSize(Math.max(4, bytes - headLen)));
    return (seq) => Buffer.concat([Buffer.from(head(seqText(seq), ct)), body, terminator]);
  }

  const boundary = `bench-${tag}`;
  const ct = `Content-Type: multipart/mixed; boundary="${boundary}"\r\n`;
  const partHead = `--${boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n`;
  const attHead = (seq: string) =>
    `--${boundary}\r\nContent-Type: application/octet-stream; name="report-${seq}.bin"\r\n` +
    `Content-Disposition: attachment; filename="report-${seq}.bin"\r\nContent-Transfer-Encoding: base64\r\n\r\n`;
  const close = `--${boundary}--\r\n`;
  const fixedLen = Buffer.byteLength(head('0000000', ct) + partHead + attHead('0000000') + close) + 78; // + the per-message base64 line
  const minText = 400;
  const sharedLines = Math.max(0, Math.floor((bytes - fixedLen - minText) / 78));
  const random = randomBytes(sharedLines * 57);
  const b64 = random.toString('base64');
  let shared = '';
  for (let i = 0; i < b64.length; i += 76) shared += `${b64.slice(i, i + 76)}\r\n`;
  const sharedBuf = Buffer.from(shared);
  const text = textOfSize(Math.max(minText, bytes - fixedLen - sharedBuf.length));
  return (seq) => {
    const s = seqText(seq);
    const first = Buffer.from(`${tag}:${s}:`.padEnd(57, '-')).subarray(0, 57).toString('base64');
    return Buffer.concat([
      Buffer.from(head(s, ct) + partHead + text + attHead(s) + first + '\r\n'),
      sharedBuf,
      Buffer.from(close),
      terminator,
    ]);
  };
}

// ---------------------------------------------------------------------------------------------
// The load generator
// ---------------------------------------------------------------------------------------------

interface LoadResult {
  n: number;
  acked: number;
  failed: number;
  failures: Map<string, number>;
  startedAt: number;
  endedAt: number;
  wallMs: number;
  /** end of DATA → 250, ms, of acknowledged messages, sorted */
  latencies: Float64Array;
  /** connect → 220 greeting, ms, sorted (one per connection) */
  greetings: Float64Array;
  clientCpuS: number;
  serverCpuS: number;
}

interface LoadOptions {
  port: number;
  n: number;
  c: number;
  mode: Mode;
  rcpt: string;
  make: (seq: number) => Buffer;
  serverPid?: number;
  progress?: (done: number, failed: number, elapsedMs: number) => void;
}

/**
 * C connections, each one SMTP transaction at a time (MAIL, RCPT, DATA, message), taking the next
 * message number from a shared counter. `reused`: a connection sends message after message;
 * `new`: connect, EHLO, one message, QUIT, for every message. A callback state machine rather than
 * promises so that the client costs as little CPU as possible.
 */
function runLoad(o: LoadOptions): Promise<LoadResult> {
  return new Promise((resolveAll) => {
    let next = 0;
    let acked = 0;
    let failed = 0;
    let running = 0;
    const failures = new Map<string, number>();
    const latencies = new Float64Array(o.n);
    const greetings: number[] = [];
    const take = () => (next < o.n ? next++ : -1);
    // When the last message was answered (250 or not): the end of the send phase.
    let lastAnswerAt = 0;
    const fail = (why: string) => {
      failed++;
      lastAnswerAt = performance.now();
      failures.set(why, (failures.get(why) ?? 0) + 1);
    };
    // Reused connections: the clock starts once every connection is open and greeted (their setup,
    // 100 ms of early-talker delay included, is not what "reused" measures). New connections: at once.
    const workers = Math.min(o.c, o.n);
    let cpu0 = process.cpuUsage();
    let srv0 = processCpuSeconds(o.serverPid);
    let startedAt = performance.now();
    let started = o.mode === 'new';
    const waiting: (() => void)[] = [];
    let gaveUp = 0;
    const maybeStart = () => {
      if (started || waiting.length + gaveUp < workers) return;
      started = true;
      cpu0 = process.cpuUsage();
      srv0 = processCpuSeconds(o.serverPid);
      startedAt = performance.now();
      for (const go of waiting.splice(0)) go();
    };
    const timer = o.progress ? setInterval(() => { if (started) o.progress!(acked, failed, performance.now() - startedAt); }, 2000) : null;

    const finished = () => {
      if (--running > 0) return;
      const endedAt = Math.max(lastAnswerAt, startedAt + 0.001);
      if (timer) clearInterval(timer);
      const cpu = process.cpuUsage(cpu0);
      resolveAll({
        n: o.n, acked, failed, failures, startedAt, endedAt,
        wallMs: endedAt - startedAt,
        latencies: latencies.slice(0, acked).sort(),
        greetings: Float64Array.from(greetings).sort(),
        clientCpuS: (cpu.user + cpu.system) / 1e6,
        serverCpuS: processCpuSeconds(o.serverPid) - srv0,
      });
    };

    const worker = () => {
      running++;
      let sock: net.Socket;
      let buf = '';
      let state: 'greet' | 'ehlo' | 'mail' | 'rcpt' | 'data' | 'body' | 'rset' | 'quit' | 'closed' = 'closed';
      let seq = -1;
      let payload: Buffer | null = null;
      let tConnect = 0;
      let tData = 0;
      let consecutiveErrors = 0;

      const open = () => {
        if (o.mode === 'new') {
          seq = take();
          if (seq < 0) return finished();
        }
        buf = '';
        state = 'greet';
        tConnect = performance.now();
        sock = net.connect(o.port, '127.0.0.1');
        sock.setNoDelay(true);
        sock.setEncoding('latin1');
        sock.on('data', onData);
        sock.on('error', () => {});
        sock.on('close', onClose);
      };
      const send = (line: string) => sock.write(line, 'latin1');
      const startTransaction = () => {
        if (o.mode === 'reused') seq = take();
        if (seq < 0) { state = 'quit'; send('QUIT\r\n'); return; }
        payload = o.make(seq);
        state = 'mail';
        send(`MAIL FROM:<${SENDER}>\r\n`);
      };
      const afterTransaction = () => {
        payload = null;
        seq = -1;
        if (o.mode === 'reused') startTransaction();
        else { state = 'quit'; send('QUIT\r\n'); }
      };
      const onReply = (code: number, line: string) => {
        switch (state) {
          case 'greet':
            greetings.push(performance.now() - tConnect);
            if (code !== 220) { fail(`greeting ${line.slice(0, 60)}`); consecutiveErrors++; seq = -1; state = 'quit'; sock.destroy(); return; }
            state = 'ehlo';
            send('EHLO bench-client.example\r\n');
            return;
          case 'ehlo':
            if (code !== 250) { fail(`EHLO ${line.slice(0, 60)}`); consecutiveErrors++; seq = -1; state = 'quit'; send('QUIT\r\n'); return; }
            if (o.mode === 'new') { payload = o.make(seq); state = 'mail'; send(`MAIL FROM:<${SENDER}>\r\n`); }
            else if (started) startTransaction();
            else { waiting.push(startTransaction); maybeStart(); }
            return;
          case 'mail':
            if (code !== 250) { fail(`MAIL ${line.slice(0, 60)}`); seq = -1; state = 'rset'; send('RSET\r\n'); return; }
            state = 'rcpt';
            send(`RCPT TO:<${o.rcpt}>\r\n`);
            return;
          case 'rcpt':
            if (code !== 250) { fail(`RCPT ${line.slice(0, 60)}`); seq = -1; state = 'rset'; send('RSET\r\n'); return; }
            state = 'data';
            send('DATA\r\n');
            return;
          case 'data':
            if (code !== 354) { fail(`DATA ${line.slice(0, 60)}`); seq = -1; state = 'rset'; send('RSET\r\n'); return; }
            state = 'body';
            tData = performance.now();
            sock.write(payload!);
            return;
          case 'body':
            if (code === 250) {
              lastAnswerAt = performance.now();
              latencies[acked++] = lastAnswerAt - tData;
              consecutiveErrors = 0;
            }
            else fail(`end of data ${line.slice(0, 60)}`);
            afterTransaction();
            return;
          case 'rset':
            afterTransaction();
            return;
          case 'quit':
            sock.end();
            return;
          default:
        }
      };
      function onData(d: string) {
        buf += d;
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (line.length > 3 && line[3] === '-') continue; // a continuation line of a multi-line reply
          onReply(Number(line.slice(0, 3)), line.trimEnd());
        }
      }
      function onClose() {
        if (state !== 'quit') {
          // Dropped mid-transaction: the message in flight (if any) counts as failed.
          if (seq >= 0) fail(`connection closed in state ${state}`);
          consecutiveErrors++;
        }
        state = 'closed';
        if (consecutiveErrors > 50) {
          fail('giving up on this connection after 50 consecutive errors');
          gaveUp++;
          maybeStart();
          return finished();
        }
        const more = next < o.n;
        if (!more) return finished();
        if (consecutiveErrors) setTimeout(open, Math.min(1000, 10 * consecutiveErrors));
        else open();
      }
      open();
    };
    for (let i = 0; i < workers; i++) worker();
  });
}

// ---------------------------------------------------------------------------------------------
// Servers under test
// ---------------------------------------------------------------------------------------------

interface TargetServer {
  name: ServerName;
  port: number;
  pid: number;
  stop(): Promise<void>;
}

async function startBare(): Promise<TargetServer> {
  const child = spawnChild('bare smtp-server', process.execPath, [BARE_SCRIPT, '0'], cleanEnv());
  addCleanup(() => child.stop());
  const m = await child.waitForOutput(/listening (\d+)/, 30_000);
  return { name: 'bare', port: Number(m[1]), pid: child.pid, stop: () => child.stop() };
}

async function installHaraka(dir: string): Promise<string> {
  const bin = path.join(dir, 'node_modules', 'Haraka', 'bin', 'haraka');
  if (existsSync(bin)) return bin;
  say(`  installing Haraka@3 into ${dir} (once; not part of the project's dependencies)…`);
  await mkdir(dir, { recursive: true });
  const npmCli = path.join(path.dirname(process.execPath), 'npm');
  const npm = existsSync(npmCli) ? npmCli : 'npm';
  const child = spawnChild('npm install Haraka', npm, ['install', '--prefix', dir, '--no-audit', '--no-fund', '--no-save', '--loglevel=error', 'Haraka@3'], process.env, { cwd: dir });
  const timer = setTimeout(() => void child.stop(1000), 10 * 60 * 1000);
  const code = await child.wait();
  clearTimeout(timer);
  if (!existsSync(bin)) throw new Error(`npm install failed (exit ${code}): ${child.output().trim().split('\n').slice(-3).join(' | ') || 'no output'}`);
  return bin;
}

async function startHaraka(opts: Options): Promise<TargetServer> {
  const bin = await installHaraka(opts.harakaDir);
  const version = (() => {
    try { return JSON.parse(readFileSync(path.join(opts.harakaDir, 'node_modules', 'Haraka', 'package.json'), 'utf8')).version as string; } catch { return '?'; }
  })();
  const dir = await mkdtemp(path.join(tmpdir(), 'mailroom-bench-haraka-'));
  addCleanup(() => rm(dir, { recursive: true, force: true }));
  const port = await freePort();
  const cfg = path.join(dir, 'config');
  // Haraka's own defaults first (as `haraka -i` would copy them; some code reads sections such as
  // connection.ini [message] without a fallback), then the few files this benchmark needs.
  await cp(path.join(opts.harakaDir, 'node_modules', 'Haraka', 'config'), cfg, { recursive: true });
  // Single process (nodes=0: no cluster), only what is needed to accept RCPT for the bench domain
  // and throw the message away; logging at WARN so that it does not pay for per-message INFO lines.
  await writeFile(path.join(cfg, 'smtp.ini'), `[main]\nlisten=127.0.0.1:${port}\nnodes=0\n`);
  await writeFile(path.join(cfg, 'plugins'), 'rcpt_to.in_host_list\nqueue/discard\n');
  await writeFile(path.join(cfg, 'host_list'), `${DOMAIN}\n`);
  await writeFile(path.join(cfg, 'me'), 'haraka.bench.test\n');
  await writeFile(path.join(cfg, 'log.ini'), '[main]\nlevel=warn\ntimestamps=false\nformat=default\n');
  // queue/discard only discards when told to; this variable is its documented switch.
  const child = spawnChild('haraka', process.execPath, [bin, '-c', dir], { ...cleanEnv(), YES_REALLY_DO_DISCARD: '1' }, { cwd: dir });
  addCleanup(() => child.stop(10_000));
  try {
    await waitForGreeting(port, 60_000, () => !child.exited);
  } catch (err) {
    await child.stop(2000);
    const lines = child.output().trim().split('\n');
    const why = lines.find((l) => /exception|error:/i.test(l)) ?? lines.slice(-2).join(' | ');
    throw new Error(`${(err as Error).message}: ${why.trim().slice(0, 200)}`);
  }
  say(`  Haraka ${version} listening on 127.0.0.1:${port} (single process, plugins: rcpt_to.in_host_list, queue/discard)`);
  return { name: 'haraka', port, pid: child.pid, stop: () => child.stop(10_000) };
}

interface MailroomServer extends TargetServer {
  httpBase: string;
  api<T = any>(method: string, p: string, body?: unknown): Promise<T>;
  createInbox(username: string): Promise<{ id: string; address: string }>;
  /** What the server wrote (its warn/error log) since it printed its start banner. */
  logSince(): string;
}

async function startMailroomServer(opts: Options): Promise<MailroomServer> {
  const mr = await startMailroomProcess({
    engine: opts.engine,
    databaseUrl: opts.databaseUrl,
    profileDir: opts.profileDir,
    dataDirPrefix: 'mailroom-bench-data-',
    baseEnv: cleanEnv(),
    env: {
      // The default (20 per IP) is a production setting; every bench connection comes from 127.0.0.1,
      // and in new-connection mode a closing connection may still be counted while its successor opens.
      MAILROOM_MAX_CONNECTIONS_PER_IP: String(Math.max(20, opts.c * 2 + 10)),
    },
    banner: /HTTP API\s+(http:\/\/\S+?:\d+)\b[\s\S]*?\n\s*SMTP\s+\S+?:(\d+)\s/,
  });
  const httpBase = mr.banner[1];
  const api = async <T>(method: string, p: string, body?: unknown): Promise<T> => {
    const res = await fetch(httpBase + p, {
      method,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${p}: HTTP ${res.status} ${text.slice(0, 300)}`);
    return JSON.parse(text) as T;
  };
  return {
    name: 'mailroom',
    port: Number(mr.banner[2]),
    pid: mr.child.pid,
    httpBase,
    api,
    createInbox: (username) => api<{ id: string; address: string }>('POST', '/v1/inboxes', { username }),
    logSince: mr.logSince,
    stop: mr.stop,
  };
}

// ---------------------------------------------------------------------------------------------
// "Parsed and readable": polling Mailroom's API
// ---------------------------------------------------------------------------------------------

interface Summary { id: string; subject: string | null; attachments: unknown[] }
interface Page { data: Summary[]; next_cursor: string | null }

/**
 * Tracks which messages of an inbox the API lists. The list is newest first by message id, and ids
 * are assigned at accept time, so newly parsed messages appear at (or near) the top: each poll
 * (every 200 ms) reads the newest 50; if they hold anything new, it reads on until a page of 200 holds
 * nothing new (the ingest queue takes the jobs of one accept batch in no particular order, so a
 * batch can fill in below its newest member). If progress stalls short of the
 * goal for a second, a full scan catches anything a top scan could miss. The time reported is when
 * the poll that completed the count returned: an upper bound, within one poll interval.
 */
class ReadableTracker {
  readonly seen = new Set<string>();
  requests = 0;
  #mailroom: MailroomServer;
  #inboxId: string;

  constructor(mailroom: MailroomServer, inboxId: string) {
    this.#mailroom = mailroom;
    this.#inboxId = inboxId;
  }

  async #page(cursor: string | null, limit = 200): Promise<Page> {
    this.requests++;
    return this.#mailroom.api<Page>('GET', `/v1/inboxes/${this.#inboxId}/messages?limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
  }

  /** The top 50 (a list page costs the server ~0.06 ms per row); if anything is new, on by 200s. */
  async scanTop(): Promise<number> {
    let cursor: string | null = null;
    let added = 0;
    for (let pages = 1; ; pages++) {
      const page = await this.#page(cursor, pages === 1 ? 50 : 200);
      let fresh = 0;
      for (const m of page.data) if (!this.seen.has(m.id)) { this.seen.add(m.id); fresh++; }
      added += fresh;
      if (!page.next_cursor || (fresh === 0 && (pages >= 2 || added === 0))) return added;
      cursor = page.next_cursor;
    }
  }

  /** Reads every page; returns what it listed (for the final check). */
  async fullScan(): Promise<Summary[]> {
    const all: Summary[] = [];
    let cursor: string | null = null;
    do {
      const page = await this.#page(cursor);
      for (const m of page.data) { all.push(m); this.seen.add(m.id); }
      cursor = page.next_cursor;
    } while (cursor);
    return all;
  }

  /** Polls until `expected` messages are listed; resolves with the time that happened, or null on timeout. */
  async waitFor(expected: number, timeoutMs: number, progress?: (seen: number) => void): Promise<number | null> {
    const deadline = performance.now() + timeoutMs;
    let lastProgress = performance.now();
    let lastReport = performance.now();
    // A stall means "no news for longer than ingest normally takes between two commits".
    let stallMs = 1000;
    let maxGap = 0;
    while (performance.now() < deadline) {
      const added = await this.scanTop();
      if (this.seen.size >= expected) return performance.now();
      const now = performance.now();
      if (added) {
        maxGap = Math.max(maxGap, now - lastProgress);
        lastProgress = now;
      } else if (now - lastProgress > Math.max(stallMs, 2 * maxGap)) {
        const before = this.seen.size;
        await this.fullScan();
        if (this.seen.size >= expected) return performance.now();
        if (this.seen.size === before) stallMs *= 2;
        lastProgress = performance.now();
      }
      if (progress && performance.now() - lastReport > 2000) { progress(this.seen.size); lastReport = performance.now(); }
      await sleep(Number(process.env.BENCH_POLL_MS ?? 200));
    }
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Runs
// ---------------------------------------------------------------------------------------------

interface RunResult {
  server: ServerName;
  size: string;
  mode: Mode;
  c: number;
  load?: LoadResult;
  acceptedPerS?: number;
  readableS?: number;
  parseLagS?: number;
  parsedPerS?: number;
  pollRequests?: number;
  verified?: string;
  error?: string;
}

function describeLoad(l: LoadResult): string {
  const rate = l.acked / (l.wallMs / 1000);
  let s = `${int0(l.acked)}/${int0(l.n)} acked in ${fixed(l.wallMs / 1000, 2)} s = ${int0(rate)} msg/s; ` +
    `end-of-data→250 p50 ${fixed(percentile(l.latencies, 50), 2)} ms, p99 ${fixed(percentile(l.latencies, 99), 2)} ms`;
  return s + failureNote(l.failed, l.failures);
}

async function measure(target: TargetServer, o: Options, size: { label: string; bytes: number }, mode: Mode, rcpt: string, warmRcpt: string, tag: string): Promise<LoadResult> {
  const n = mode === 'new' ? o.nNew : o.n;
  if (o.warmup > 0) {
    // Warm-up on reused connections (JIT, caches), always the same amount, not measured.
    const warm = await runLoad({ port: target.port, n: o.warmup, c: o.c, mode: 'reused', rcpt: warmRcpt, make: messageFactory(size.bytes, warmRcpt, size.label, `w${tag}`) });
    if (warm.failed) say(`    warm-up: ${describeLoad(warm)}`);
  }
  return runLoad({
    port: target.port, n, c: o.c, mode, rcpt,
    make: messageFactory(size.bytes, rcpt, size.label, tag),
    serverPid: target.pid,
    progress: (done, failed, ms) => say(`    … ${int0(done)}/${int0(n)} acked${failed ? `, ${int0(failed)} failed` : ''}, ${int0(done / (ms / 1000))} msg/s`),
  });
}

async function runReference(target: TargetServer, o: Options, size: { label: string; bytes: number }, mode: Mode): Promise<RunResult> {
  const label = target.name === 'bare' ? 'bare smtp-server (discard)' : 'Haraka (queue/discard)';
  say(`  ${label}: ${size.label}, ${mode === 'new' ? 'new connection per message' : 'reused connections'}, C=${o.c}`);
  const tag = randomBytes(4).toString('hex');
  const rcpt = `bench@${DOMAIN}`;
  const load = await measure(target, o, size, mode, rcpt, rcpt, tag);
  say(`    ${describeLoad(load)}`);
  return { server: target.name, size: size.label, mode, c: o.c, load, acceptedPerS: load.acked / (load.wallMs / 1000) };
}

async function runMailroom(o: Options, size: { label: string; bytes: number }, mode: Mode): Promise<RunResult> {
  say(`  Mailroom (${o.engine}, fresh ${o.engine === 'postgres' ? 'schema' : 'data directory'}): ${size.label}, ${mode === 'new' ? 'new connection per message' : 'reused connections'}, C=${o.c}`);
  const t0 = performance.now();
  const mr = await startMailroomServer(o);
  try {
    say(`    started in ${fixed((performance.now() - t0) / 1000, 1)} s (SMTP ${mr.port}, ${mr.httpBase})`);
    const inbox = await mr.createInbox('bench');
    const warmInbox = await mr.createInbox('warmup');
    const tag = randomBytes(4).toString('hex');
    // Warm-up first, and wait until it is parsed, so the measured run starts with an idle server.
    if (o.warmup > 0) {
      const warm = await runLoad({ port: mr.port, n: o.warmup, c: o.c, mode: 'reused', rcpt: warmInbox.address, make: messageFactory(size.bytes, warmInbox.address, size.label, `w${tag}`) });
      if (warm.failed) say(`    warm-up: ${describeLoad(warm)}`);
      const done = await new ReadableTracker(mr, warmInbox.id).waitFor(warm.acked, o.parseTimeoutMs);
      if (done === null) throw new Error('the warm-up messages were not all readable before the parse timeout');
    }
    const n = mode === 'new' ? o.nNew : o.n;
    const cpuBefore = processCpuSeconds(mr.pid);
    const load = await runLoad({
      port: mr.port, n, c: o.c, mode, rcpt: inbox.address,
      make: messageFactory(size.bytes, inbox.address, size.label, tag),
      serverPid: mr.pid,
      progress: (done, failed, ms) => say(`    … ${int0(done)}/${int0(n)} accepted${failed ? `, ${int0(failed)} failed` : ''}, ${int0(done / (ms / 1000))} msg/s`),
    });
    say(`    ${describeLoad(load)}`);
    say(`    waiting until all ${int0(load.acked)} accepted messages are parsed and listed by the API…`);
    // Nothing can be readable before it is accepted, so polling starts when sending ends (it would
    // only compete with the accept path); the clock still runs from the start of sending.
    const tracker = new ReadableTracker(mr, inbox.id);
    const doneAt = await tracker.waitFor(load.acked, o.parseTimeoutMs, (seen) =>
      say(`    … ${int0(seen)}/${int0(load.acked)} readable, ${fixed((performance.now() - load.startedAt) / 1000, 1)} s since the first message`));
    const cpuAfter = processCpuSeconds(mr.pid);
    const result: RunResult = { server: 'mailroom', size: size.label, mode, c: o.c, load, acceptedPerS: load.acked / (load.wallMs / 1000), pollRequests: tracker.requests };
    if (doneAt === null) {
      result.error = `only ${int0(tracker.seen.size)} of ${int0(load.acked)} readable after ${o.parseTimeoutMs / 1000} s`;
      say(`    ${result.error}`);
      return result;
    }
    result.readableS = (doneAt - load.startedAt) / 1000;
    result.parseLagS = (doneAt - load.endedAt) / 1000;
    result.parsedPerS = load.acked / result.readableS;
    // Untimed check: one full listing, every message once, with the expected subject and parts.
    const all = await new ReadableTracker(mr, inbox.id).fullScan();
    const ids = new Set(all.map((m) => m.id));
    const subjects = new Set(all.map((m) => m.subject));
    const wantAttachments = size.bytes > 8 * 1024 ? 1 : 0;
    const badSubject = all.filter((m) => !m.subject?.startsWith(`bench ${size.label} `)).length;
    const badParts = all.filter((m) => m.attachments.length !== wantAttachments).length;
    const ok = ids.size === all.length && all.length === load.acked && subjects.size === all.length && !badSubject && !badParts;
    result.verified = ok
      ? `verified: ${int0(all.length)} distinct messages listed, subjects and attachments as sent`
      : `CHECK FAILED: listed ${all.length} (${ids.size} distinct ids, ${subjects.size} distinct subjects), expected ${load.acked}; ${badSubject} wrong subjects, ${badParts} with ${wantAttachments === 1 ? 'not exactly one attachment' : 'attachments'}`;
    say(`    all readable ${fixed(result.readableS, 2)} s after the first message (${fixed(result.parseLagS, 2)} s after the last 250) = ${int0(result.parsedPerS)} msg/s parsed-and-readable; ` +
      `server CPU ${fixed(cpuAfter - cpuBefore, 1)} s over that time; ${tracker.requests} list requests while polling`);
    say(`    ${result.verified}`);
    return result;
  } finally {
    sayMailroomLog(mr.logSince());
    await mr.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

function printTable(results: RunResult[], o: Options): void {
  const cols: Column[] = [
    { h: 'server', w: 26, r: false },
    { h: 'N', w: 7, r: true },
    { h: 'acked', w: 7, r: true },
    { h: 'failed', w: 6, r: true },
    { h: 'accepted/s', w: 10, r: true },
    { h: 'p50 ms', w: 7, r: true },
    { h: 'p99 ms', w: 7, r: true },
    { h: 'conn→220', w: 8, r: true },
    { h: 'srv CPU', w: 7, r: true },
    { h: 'cli CPU', w: 7, r: true },
    { h: 'readable s', w: 10, r: true },
    { h: 'parsed/s', w: 8, r: true },
  ];
  const groups = new Map<string, RunResult[]>();
  for (const r of results) {
    const k = `${r.size} × ${r.mode === 'new' ? 'new connection per message' : 'reused connections'}, C=${r.c}`;
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  for (const [k, rs] of groups) {
    say('');
    say(`${k}`);
    printTableHeader(cols);
    for (const r of rs) {
      const name = r.server === 'bare' ? 'bare smtp-server (discard)' : r.server === 'haraka' ? 'Haraka (discard)' : `Mailroom (${o.engine})`;
      const l = r.load;
      if (!l) { say(`${pad(name, 26)}  ${r.error ?? 'no result'}`); continue; }
      const wall = l.wallMs / 1000;
      const cells = [
        name,
        int0(l.n), int0(l.acked), int0(l.failed),
        int0(r.acceptedPerS ?? 0),
        fixed(percentile(l.latencies, 50), 2),
        fixed(percentile(l.latencies, 99), 2),
        l.greetings.length ? fixed(percentile(l.greetings, 50), 0) : '-',
        pct(l.serverCpuS, wall),
        pct(l.clientCpuS, wall),
        r.readableS !== undefined ? fixed(r.readableS, 2) : r.server === 'mailroom' ? 'timeout' : '-',
        r.parsedPerS !== undefined ? int0(r.parsedPerS) : '-',
      ];
      printTableRow(cells, cols);
      if (r.error && r.server !== 'mailroom') say(`  ${r.error}`);
    }
  }
  say('');
  say('accepted/s = messages answered 250 ÷ wall time of the send phase; p50/p99 = end of DATA ("\\r\\n.\\r\\n" written) → 250;');
  say('conn→220 = median connect → greeting per connection (ms); srv/cli CPU = CPU time of the server process / of this load');
  say('generator ÷ send-phase wall time (100% = one core; the machine has ' + cpus().length + ' cores); readable s = first message sent →');
  say('every accepted message listed by GET /v1/inboxes/{id}/messages; parsed/s = accepted ÷ readable s.');
}

function printRatios(results: RunResult[], o: Options, harakaNote: string | null): void {
  say('');
  say('Ratios (same run)');
  const find = (server: ServerName, size: string, mode: Mode) => results.find((r) => r.server === server && r.size === size && r.mode === mode && r.load);
  const isTargetCase = (size: string, mode: Mode) => size === '2k' && mode === 'reused' && o.c === 10;
  let printed = false;
  for (const size of o.sizes) {
    for (const mode of o.modes) {
      const mr = find('mailroom', size.label, mode);
      const bare = find('bare', size.label, mode);
      const har = find('haraka', size.label, mode);
      if (!mr) continue;
      const target = isTargetCase(size.label, mode);
      const head = `  ${size.label}, ${mode === 'new' ? 'new connection per message' : 'reused connections'}, C=${o.c}${target ? '  [the targets are set for this case]' : '  (informational)'}`;
      say(head);
      printed = true;
      const verdict = (v: number, goal: number) => (target ? (v >= goal ? '  PASS' : '  MISS') : '');
      if (har) {
        const v = mr.acceptedPerS! / har.acceptedPerS!;
        say(`    Mailroom durably accepted/s ÷ Haraka discard/s     = ${int0(mr.acceptedPerS!)} / ${int0(har.acceptedPerS!)} = ${fixed(v, 2)}   (target ≥ 1.00)${verdict(v, 1)}`);
      } else {
        say(`    Mailroom durably accepted/s ÷ Haraka discard/s     = n/a (${harakaNote ?? 'Haraka not measured'})`);
      }
      if (bare) {
        const a = mr.acceptedPerS! / bare.acceptedPerS!;
        say(`    Mailroom accepted/s ÷ bare smtp-server/s           = ${int0(mr.acceptedPerS!)} / ${int0(bare.acceptedPerS!)} = ${fixed(a, 2)}`);
        if (mr.parsedPerS !== undefined) {
          const v = mr.parsedPerS / bare.acceptedPerS!;
          say(`    Mailroom parsed-and-readable/s ÷ bare smtp-server/s = ${int0(mr.parsedPerS)} / ${int0(bare.acceptedPerS!)} = ${fixed(v, 3)}  (target ≥ 0.10)${verdict(v, 0.1)}`);
        } else {
          say(`    Mailroom parsed-and-readable/s ÷ bare smtp-server/s = n/a (${mr.error ?? 'not all readable'})${target ? '  MISS' : ''}`);
        }
      } else {
        say('    Mailroom parsed-and-readable/s ÷ bare smtp-server/s = n/a (bare smtp-server not measured)');
      }
      if (mr.load && mr.load.failed) say(`    note: Mailroom refused or dropped ${int0(mr.load.failed)} messages in this run`);
    }
  }
  if (!printed) say('  (no Mailroom runs, no ratios)');
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const o = parseOptions();
  const started = performance.now();
  say(`Mailroom inbound benchmark — ${machineSummary()}`);
  say(`  N = ${int0(o.n)} per run on reused connections${o.modes.includes('new') ? `, ${int0(o.nNew)} per run with a new connection per message (fewer: see the note below)` : ''}; C = ${o.c}; sizes ${o.sizes.map((s) => `${s.label} (${int0(s.bytes)} bytes)`).join(', ')}`);
  say(`  servers: ${o.servers.join(', ')}; Mailroom engine: ${o.engine}; ${o.warmup} warm-up messages before each run (not measured)`);
  say(`  load average at start: ${loadAverage()} (other processes on this machine skew every number below)`);
  for (const size of o.sizes) {
    const sample = messageFactory(size.bytes, `bench@${DOMAIN}`, size.label, 'check')(1234567);
    if (sample.length - 3 !== size.bytes) say(`  note: ${size.label} messages are ${int0(sample.length - 3)} bytes, not exactly ${int0(size.bytes)}`);
  }
  let fsync: { p50: number; p99: number } | null = null;
  if (o.servers.includes('mailroom') && o.engine === 'embedded') {
    fsync = await probeFdatasync(tmpdir()).catch(() => null);
    if (fsync) {
      say(`  disk: 2 KB append + fdatasync in ${tmpdir()} takes p50 ${fixed(fsync.p50, 2)} ms, p99 ${fixed(fsync.p99, 2)} ms; every embedded \`250\``);
      say(`        waits for one, so at C=${o.c} without pipelining durable accepts cannot exceed C / fdatasync ≈ ${int0(o.c / (fsync.p50 / 1000))}/s`);
    }
  }
  if (o.modes.includes('new')) {
    say('  note: smtp-server (Mailroom and the bare reference) waits 100 ms before its greeting (an early-talker check), so a');
    say('        new connection per message is bound by that: at most C / 0.1 s = ' + int0(o.c / 0.1) + ' msg/s at C=' + o.c + ', whatever the server does');
    say('        after. Haraka greets at once. The library is measured as shipped, not patched.');
  }
  say('');

  let bare: TargetServer | null = null;
  let haraka: TargetServer | null = null;
  let harakaNote: string | null = o.servers.includes('haraka') ? null : 'skipped';
  if (o.servers.includes('bare')) {
    bare = await startBare();
    say(`  bare smtp-server listening on 127.0.0.1:${bare.port}`);
  }
  if (o.servers.includes('haraka')) {
    try {
      haraka = await startHaraka(o);
    } catch (err) {
      harakaNote = `not available (${(err as Error).message.split('\n')[0].slice(0, 300)})`;
      say(`  Haraka: ${harakaNote}`);
    }
  }

  const results: RunResult[] = [];
  for (const size of o.sizes) {
    for (const mode of o.modes) {
      say('');
      say(`== ${size.label} messages, ${mode === 'new' ? 'new connection per message' : 'reused connections'}, C=${o.c} ==`);
      for (const server of o.servers) {
        try {
          if (server === 'bare' && bare) results.push(await runReference(bare, o, size, mode));
          if (server === 'haraka' && haraka) results.push(await runReference(haraka, o, size, mode));
          if (server === 'mailroom') results.push(await runMailroom(o, size, mode));
        } catch (err) {
          const msg = (err as Error).message.split('\n').slice(0, 4).join(' | ');
          say(`    ${server} run failed: ${msg}`);
          results.push({ server, size: size.label, mode, c: o.c, error: `failed: ${msg.slice(0, 200)}` });
          if (server === 'haraka') harakaNote = `failed during the run (${msg.slice(0, 200)})`;
        }
      }
    }
  }

  await bare?.stop();
  await haraka?.stop();

  say('');
  say('================================================================================================');
  say(`Results (total bench time ${fixed((performance.now() - started) / 60_000, 1)} min; load average at the end: ${loadAverage()})`);
  if (harakaNote && !haraka) say(`Haraka: ${harakaNote}`);
  printTable(results, o);
  printRatios(results, o, harakaNote);
  if (fsync) {
    say(`  (embedded: each 250 waits for a group-committed fdatasync, p50 ${fixed(fsync.p50, 2)} ms on this disk: ceiling at C=${o.c} ≈ ${int0(o.c / (fsync.p50 / 1000))} accepted/s)`);
  }
  const verified = results.filter((r) => r.verified);
  if (verified.some((r) => r.verified!.startsWith('CHECK FAILED'))) {
    say('');
    for (const r of verified) say(`  Mailroom ${r.size} ${r.mode}: ${r.verified}`);
    process.exitCode = 1;
  }
  if (o.modes.includes('new')) {
    say('');
    say('Note: in new-connection runs, smtp-server (Mailroom, bare) sends its greeting only after a fixed 100 ms early-talker');
    say(`delay (see conn→220), so those runs measure mostly that delay (ceiling C / 0.1 s = ${int0(o.c / 0.1)} msg/s) and Haraka, which`);
    say(`greets at once, is not limited by it. N for those runs is ${int0(o.nNew)} (--n-new) to keep the whole run short.`);
  }
}

runBench(main, 'stopping servers and removing temporary data');
