/**
 * What `bench/inbound.ts` and `bench/outbound.ts` share: option parsing helpers, number
 * formatting and percentiles, table printing, a line about the machine, CPU sampling from /proc,
 * child processes (spawning, waiting for their output, stopping them) with the cleanup that runs
 * at the end or on a signal, starting a Mailroom server on a fresh data directory or schema, and
 * the top-level runner that ties `main()` to that cleanup.
 *
 * Importing this module registers one `exit` handler (it kills any child still alive); everything
 * else happens only when called.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import { dropSchemas } from '../test/helpers/mailroom.ts';

/** The repository's root (the working directory of every child). */
export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const MAILROOM_BIN = path.join(ROOT, 'bin', 'mailroom.js');
/** Mailroom's own domain (MAILROOM_DOMAIN) in every benchmark. */
export const DOMAIN = 'bench.test';
/** Mailroom's host name (MAILROOM_HOSTNAME) in every benchmark. */
export const HOSTNAME = 'mx.bench.test';
export const ADMIN_TOKEN = 'bench-admin-token-0123456789abcdef';
export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/test';
/** Filler prose for message bodies. */
export const LOREM = 'Quarterly numbers are attached; the agent should file them under finance and reply with a short summary of what changed since last time. ';

export type Engine = 'embedded' | 'postgres';
export interface Size { label: string; bytes: number }

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

const HELP_OPTION = { help: { type: 'boolean', short: 'h' } } as const;

/**
 * The command line parsed strictly against `options` plus `-h/--help`; with --help, prints `usage`
 * and exits.
 */
export function parseCommandLine<const T extends ParseArgsOptionsConfig>(usage: string, options: T) {
  type Config = { options: T & typeof HELP_OPTION; strict: true };
  const { values } = parseArgs<Config>({ options: { ...options, ...HELP_OPTION }, strict: true });
  if ((values as { help?: boolean }).help) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  return values;
}

/** An integer option (`_` and `,` allowed as digit separators); `def` when unset or empty. */
export function intOption(name: string, v: string | undefined, def: number, min: number): number {
  if (v === undefined || v === '') return def;
  const n = Number(v.replace(/[_,]/g, ''));
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got "${v}"`);
  return n;
}

/** A size such as `2k`, `50k`, `1m` or a number of bytes, at least `min` bytes; `examples` go into the error. */
export function parseSize(s: string, min: number, examples: string): Size {
  const m = /^(\d+(?:\.\d+)?)\s*([kKmM]?)[bB]?$/.exec(s.trim());
  if (!m) throw new Error(`not a size: "${s}" (try ${examples} or a number of bytes)`);
  const bytes = Math.round(Number(m[1]) * (m[2].toLowerCase() === 'k' ? 1024 : m[2].toLowerCase() === 'm' ? 1024 * 1024 : 1));
  if (bytes < min) throw new Error(`size ${s} is too small (at least ${min} bytes)`);
  return { label: s.trim().toLowerCase(), bytes };
}

/** An environment switch that is on: 1, true or yes (any case). */
export const truthy = (v: string | undefined) => ['1', 'true', 'yes'].includes((v ?? '').toLowerCase());

/** Checks the --engine value. */
export function engineOption(v: string): Engine {
  if (v !== 'embedded' && v !== 'postgres') throw new Error(`unknown engine "${v}" (embedded, postgres)`);
  return v;
}

/** The --profile directory, made absolute; null when not asked for. */
export const profileDirOption = (v: string | undefined): string | null => (v ? path.resolve(v) : null);

// ---------------------------------------------------------------------------------------------
// Output and numbers
// ---------------------------------------------------------------------------------------------

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** A whole number with thousands separators: 12,345. */
export const int0 = (n: number) => Math.round(n).toLocaleString('en-US');
/** A number with `d` decimals and thousands separators. */
export const fixed = (n: number, d = 1) => n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
/** Writes one line to stdout. */
export const say = (line: string) => process.stdout.write(`${line}\n`);
/** CPU seconds over wall seconds as a percentage of one core, `-` when unknown. */
export const pct = (cpuS: number, wallS: number) => (Number.isFinite(cpuS) ? `${int0((cpuS / wallS) * 100)}%` : '-');

/** The nearest-rank percentile `p` (0–100) of ascending `sorted`; NaN when empty. */
export function percentile(sorted: Float64Array, p: number): number {
  if (!sorted.length) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

/** `; FAILED n (count× reason; …)` when anything failed, else nothing. */
export function failureNote(failed: number, failures: Map<string, number>): string {
  return failed ? `; FAILED ${int0(failed)} (${[...failures].map(([k, v]) => `${v}× ${k}`).join('; ')})` : '';
}

// ---------------------------------------------------------------------------------------------
// Tables
// ---------------------------------------------------------------------------------------------

/** A table column: heading, width, right-aligned or not. */
export interface Column { h: string; w: number; r: boolean }

export function pad(s: string, w: number, right = false): string {
  return right ? s.padStart(w) : s.padEnd(w);
}

/** Prints the column headings and a line of dashes under them. */
export function printTableHeader(cols: Column[]): void {
  say(cols.map((c) => pad(c.h, c.w, c.r)).join('  '));
  say(cols.map((c) => '-'.repeat(c.w)).join('  '));
}

/** Prints one row, each cell padded to its column. */
export function printTableRow(cells: string[], cols: Column[]): void {
  say(cells.map((c, i) => pad(c, cols[i].w, cols[i].r)).join('  '));
}

// ---------------------------------------------------------------------------------------------
// The machine
// ---------------------------------------------------------------------------------------------

/** `node v24.x, 8 × <cpu model>, loopback`, for the first line of a report. */
export function machineSummary(): string {
  return `node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, loopback`;
}

/** The 1, 5 and 15 minute load averages, `0.12, 0.34, 0.56`. */
export function loadAverage(): string {
  return loadavg().map((l) => l.toFixed(2)).join(', ');
}

// ---------------------------------------------------------------------------------------------
// CPU time from /proc (Linux)
// ---------------------------------------------------------------------------------------------

/** Clock ticks per second, the unit of the CPU times in /proc/<pid>/stat. */
const CLK_TCK = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(r.stdout?.trim());
  return Number.isFinite(n) && n > 0 ? n : 100;
})();

/** User + system CPU seconds in the text of a /proc/<pid>/stat (or task) file. */
function cpuOfStat(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime, stime (fields 14 and 15)
}

/** The command name in a /proc stat line (between the parentheses). */
function commOfStat(stat: string): string {
  return stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux); NaN elsewhere. */
export function processCpuSeconds(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    return cpuOfStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return NaN;
  }
}

export interface ThreadCpu { name: string; cpu: number }

/** CPU seconds per thread of a process (tid → name, seconds), from /proc/<pid>/task. */
export function threadCpu(pid: number | undefined): Map<string, ThreadCpu> {
  const out = new Map<string, ThreadCpu>();
  if (!pid) return out;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
        const name = commOfStat(stat);
        out.set(tid, { name: tid === String(pid) ? `${name} (main)` : name, cpu: cpuOfStat(stat) });
      } catch {}
    }
  } catch {}
  return out;
}

/** CPU seconds of every process whose name is `comm` (the PostgreSQL server's backends). */
export function commCpu(comm: string): number {
  let total = 0;
  try {
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        if (commOfStat(stat) === comm) total += cpuOfStat(stat);
      } catch {}
    }
  } catch {
    return NaN;
  }
  return total;
}

// ---------------------------------------------------------------------------------------------
// Cleanup
// ---------------------------------------------------------------------------------------------

const cleanups: (() => Promise<unknown>)[] = [];
const liveChildren = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of liveChildren) try { c.kill('SIGKILL'); } catch {}
});

/** Registers work for the end of the run (or a signal); it runs last-registered first. */
export function addCleanup(...fns: (() => Promise<unknown>)[]): void {
  cleanups.push(...fns);
}

/** Runs (and forgets) every registered cleanup, newest first, ignoring their errors. */
export async function runCleanups(): Promise<void> {
  while (cleanups.length) await cleanups.pop()!().catch(() => {});
}

// ---------------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------------

export interface Child {
  name: string;
  pid: number;
  proc: ChildProcess;
  /** Everything it wrote to stdout and stderr so far (the last 256 KB). */
  output(): string;
  readonly exited: boolean;
  /** Resolves with the first match of `re` in its output; rejects if it exits first or after `timeoutMs`. */
  waitForOutput(re: RegExp, timeoutMs: number): Promise<RegExpExecArray>;
  /** Resolves with the exit code (null when killed by a signal or not started). */
  wait(): Promise<number | null>;
  /** SIGTERM, then SIGKILL after `timeoutMs`; resolves once it has exited. */
  stop(timeoutMs?: number): Promise<void>;
}

/**
 * Starts `cmd args` with stdout and stderr captured (and an IPC channel with `ipc`), in `cwd`
 * (the repository by default). It is killed if this process exits first.
 */
export function spawnChild(name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv, opts: { cwd?: string; ipc?: boolean } = {}): Child {
  const child = spawn(cmd, args, { env, cwd: opts.cwd ?? ROOT, stdio: opts.ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'] });
  liveChildren.add(child);
  let out = '';
  let exited = false;
  let exitCode: number | null = null;
  const listeners = new Set<() => void>();
  const onData = (d: Buffer) => {
    out += d.toString('utf8');
    if (out.length > 256 * 1024) out = out.slice(-256 * 1024);
    for (const l of [...listeners]) l();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exit = new Promise<void>((resolve) => {
    const done = () => {
      exited = true;
      liveChildren.delete(child);
      setImmediate(() => { for (const l of [...listeners]) l(); resolve(); });
    };
    child.once('exit', (code) => { exitCode = code; done(); });
    child.once('error', (err) => { out += `\n${err.message}`; done(); });
  });
  return {
    name,
    pid: child.pid ?? 0,
    proc: child,
    output: () => out,
    get exited() { return exited; },
    wait: () => exit.then(() => exitCode),
    waitForOutput(re, timeoutMs) {
      return new Promise((resolve, reject) => {
        const finish = () => { listeners.delete(check); clearTimeout(timer); };
        const check = () => {
          const m = re.exec(out);
          if (m) { finish(); resolve(m); return; }
          if (exited) { finish(); reject(new Error(`${name} exited before printing ${re}:\n${out.slice(-3000)}`)); }
        };
        const timer = setTimeout(() => { finish(); reject(new Error(`${name}: nothing matching ${re} after ${timeoutMs / 1000} s:\n${out.slice(-3000)}`)); }, timeoutMs);
        listeners.add(check);
        check();
      });
    },
    async stop(timeoutMs = 30_000) {
      if (exited) return;
      const timer = setTimeout(() => { try { child.kill('SIGKILL'); } catch {} }, timeoutMs);
      try { child.kill('SIGTERM'); } catch {}
      await exit;
      clearTimeout(timer);
    },
  };
}

/**
 * The parent's environment without anything that would steer a Mailroom child elsewhere
 * (MAILROOM_*, DATABASE_URL, NODE_TEST*), and without NODE_OPTIONS with `dropNodeOptions`.
 */
export function cleanEnv(opts: { dropNodeOptions?: boolean } = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) {
    if (k.startsWith('MAILROOM_') || k === 'DATABASE_URL' || k.startsWith('NODE_TEST') || (opts.dropNodeOptions && k === 'NODE_OPTIONS')) delete env[k];
  }
  return env;
}

// ---------------------------------------------------------------------------------------------
// Mailroom as a child process
// ---------------------------------------------------------------------------------------------

export interface MailroomProcessOptions {
  engine: Engine;
  databaseUrl: string;
  profileDir: string | null;
  /** Name prefix of the temporary data directory. */
  dataDirPrefix: string;
  /** The environment to start from (a cleanEnv()). */
  baseEnv: NodeJS.ProcessEnv;
  /** The benchmark's own variables, on top of the common ones. */
  env: NodeJS.ProcessEnv;
  /** What the start banner looks like; group 1 must be the HTTP API's base URL. */
  banner: RegExp;
}

export interface MailroomProcess {
  child: Child;
  /** The banner's match: [1] the HTTP API's base URL, more groups as `banner` has them. */
  banner: RegExpExecArray;
  /** What the server wrote (its warn/error log) since it printed its start banner. */
  logSince(): string;
  /** Stops the server, removes its data directory and drops its schema. */
  stop(): Promise<void>;
}

/**
 * `node bin/mailroom.js serve` on a fresh data directory (and, with `--engine postgres`, a fresh
 * schema), log level warn, HTTP and SMTP on free loopback ports (under --cpu-prof when
 * `profileDir` is set); resolves once it printed its banner. Its directory and schema are removed by stop()
 * or, failing that, by the cleanup at the end.
 */

/** The environment of a benchmarked `mailroom serve`: loopback, ephemeral ports, the bench's token and domain. */
function mailroomEnv(base: NodeJS.ProcessEnv | undefined, dataDir: string, extra: NodeJS.ProcessEnv | undefined, store: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return {
    ...base,
    MAILROOM_DATA_DIR: dataDir,
    MAILROOM_ADMIN_TOKEN: ADMIN_TOKEN,
    MAILROOM_LOG_LEVEL: 'warn',
    MAILROOM_HOST: '127.0.0.1',
    MAILROOM_HTTP_PORT: '0',
    MAILROOM_SMTP_PORT: '0',
    MAILROOM_DOMAIN: DOMAIN,
    MAILROOM_HOSTNAME: HOSTNAME,
    ...extra,
    ...store,
    ...(process.env.BENCH_MAILROOM_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_MAILROOM_NODE_OPTIONS } : {}),
  };
}

export async function startMailroomProcess(o: MailroomProcessOptions): Promise<MailroomProcess> {
  const dataDir = await mkdtemp(path.join(tmpdir(), o.dataDirPrefix));
  const schema = `bench_${process.pid}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  let dropped = false;
  const dropSchema = async () => {
    if (o.engine !== 'postgres' || dropped) return;
    dropped = true;
    await dropSchemas(schema, o.databaseUrl);
  };
  const removeDir = () => rm(dataDir, { recursive: true, force: true });
  addCleanup(removeDir, dropSchema);
  const env = mailroomEnv(o.baseEnv, dataDir, o.env, o.engine === 'postgres' ? { DATABASE_URL: o.databaseUrl, MAILROOM_DATABASE_SCHEMA: schema } : {});
  const profile = o.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${o.profileDir}`] : [];
  const child = spawnChild('mailroom', process.execPath, [...profile, MAILROOM_BIN, 'serve'], env);
  addCleanup(() => child.stop());
  const stop = async () => {
    await child.stop();
    await removeDir();
    await dropSchema();
  };
  let banner: RegExpExecArray;
  try {
    banner = await child.waitForOutput(o.banner, 120_000);
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  }
  const bannerEnd = child.output().length;
  return { child, banner, logSince: () => child.output().slice(bannerEnd), stop };
}

/** Reports how many warn-or-worse lines Mailroom logged during a run (`log` from logSince()), and the first. */
export function sayMailroomLog(log: string): void {
  const lines = log.split('\n').filter((l) => l.trim());
  if (lines.length) {
    const first = lines[0].length > 300 ? `${lines[0].slice(0, 300)}…` : lines[0];
    say(`    Mailroom wrote ${lines.length} log line(s) at warn level or above during the run; the first: ${first}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Running a benchmark
// ---------------------------------------------------------------------------------------------

/**
 * Runs `main`, then the cleanups. An error thrown by `main`, or a stall (the event loop running dry
 * before `main` finished), is reported on stderr and sets exit code 1; SIGINT/SIGTERM print
 * `<signal>: <stopping>…`, clean up and exit 130.
 */
export function runBench(main: () => Promise<void>, stopping: string): void {
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`\n${signal}: ${stopping}…\n`);
    void runCleanups().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  let mainDone = false;
  process.on('beforeExit', () => {
    // The event loop ran dry while main() still waited on something: a bug in the bench, not a result.
    if (!mainDone) {
      mainDone = true;
      process.stderr.write('bench failed: stalled (nothing left to wait for before the run finished)\n');
      process.exitCode = 1;
      void runCleanups();
    }
  });

  main().finally(() => { mainDone = true; }).then(
    () => runCleanups(),
    async (err) => {
      process.stderr.write(`bench failed: ${(err as Error)?.stack ?? err}\n`);
      await runCleanups();
      process.exitCode = 1;
    },
  );
}

// ---------------------------------------------------------------------------------------------
// Several Mailroom processes on one PostgreSQL schema
// ---------------------------------------------------------------------------------------------

export interface MailroomClusterOptions extends Omit<MailroomProcessOptions, 'engine' | 'profileDir'> {
  /** How many `mailroom serve` processes share the schema. */
  count: number;
}

export interface MailroomCluster {
  /** The one schema they share (pg-boss's is `bossSchemaFor(schema)`). */
  schema: string;
  /** In start order; members[i].child.pid is the process id. */
  members: MailroomProcess[];
  /** Stops every member still running, removes their data directories and drops the schema. */
  stop(): Promise<void>;
}

/**
 * `count` × `node bin/mailroom.js serve` on ONE fresh PostgreSQL schema (each with its own data
 * directory, since a data directory is locked by its process), started one after the other so
 * that the first applies the migrations; resolves once every one printed its banner. The schema is
 * dropped by stop() or, failing that, by the cleanup at the end. Kill a member with
 * `members[i].child.proc.kill('SIGKILL')`; stop() copes with members already gone.
 */
export async function startMailroomCluster(o: MailroomClusterOptions): Promise<MailroomCluster> {
  const schema = `bench_${process.pid}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  let dropped = false;
  const dropSchema = async () => {
    if (dropped) return;
    dropped = true;
    await dropSchemas(schema, o.databaseUrl);
  };
  addCleanup(dropSchema);
  const members: MailroomProcess[] = [];
  const stop = async () => {
    await Promise.all(members.map((m) => m.stop().catch(() => {})));
    await dropSchema();
  };
  try {
    for (let i = 0; i < o.count; i++) {
      const dataDir = await mkdtemp(path.join(tmpdir(), o.dataDirPrefix));
      const removeDir = () => rm(dataDir, { recursive: true, force: true });
      addCleanup(removeDir);
      const env = mailroomEnv(o.baseEnv, dataDir, o.env, { DATABASE_URL: o.databaseUrl, MAILROOM_DATABASE_SCHEMA: schema });
      const child = spawnChild(`mailroom ${i + 1}`, process.execPath, [MAILROOM_BIN, 'serve'], env);
      addCleanup(() => child.stop());
      const stopMember = async () => {
        await child.stop();
        await removeDir();
      };
      let banner: RegExpExecArray;
      try {
        banner = await child.waitForOutput(o.banner, 120_000);
      } catch (err) {
        await stopMember().catch(() => {});
        throw err;
      }
      const bannerEnd = child.output().length;
      members.push({ child, banner, logSince: () => child.output().slice(bannerEnd), stop: stopMember });
    }
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  }
  return { schema, members, stop };
}

/**
 * CPU seconds of every process named `comm` plus what their exited children used (cutime + cstime,
 * credited to a parent when it reaps them): for PostgreSQL, the postmaster collects the time of
 * backends that disconnected, so unlike commCpu() the total does not drop when connections close.
 * It still counts every database on the server, other users' included.
 */
export function commCpuWithChildren(comm: string): number {
  let total = 0;
  try {
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        if (commOfStat(stat) !== comm) continue;
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        total += (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / CLK_TCK; // utime, stime, cutime, cstime
      } catch {}
    }
  } catch {
    return NaN;
  }
  return total;
}
