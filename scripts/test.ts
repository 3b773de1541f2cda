/**
 * `npm test`: the whole suite, every file on both engines (embedded PGlite and PostgreSQL; see
 * test/helpers/mailroom.ts). Extra arguments are passed to `node --test`: files (or globs) choose
 * what runs, `--flags` go to every run (e.g. `npm test -- test/roundtrip.test.ts`).
 *   MAILROOM_TEST_ENGINES=pglite        run one engine only
 *   MAILROOM_TEST_DATABASE_URL=…        PostgreSQL to use (default postgres://postgres@127.0.0.1:5432/test)
 *   MAILROOM_TEST_CONCURRENCY=N         parallel test runs (default 4; `--test-concurrency=N` too)
 *
 * A small scheduler rather than one `node --test` over every file, which started files in
 * alphabetical order: the 4–7-minute campaign and crash files started late and set the end of the
 * run. Here each file is one `node --test` run, started longest first (ESTIMATES), and the longest
 * files run as one process per engine (MAILROOM_TEST_ENGINES=<engine>) so that their halves are
 * scheduled separately. Each run's spec report is printed whole when it ends (runs do not
 * interleave); a summary with every run's wall time follows.
 *
 * Why not every file split per engine: the suite keeps both cores busy from start to end
 * (measured), so what shortens it is less CPU, not more parallelism. A split file pays for a
 * second test process (1–2 s of CPU loading the server) and runs twice whatever in it is not
 * per engine (its unit tests, `engine === ENGINES[0]` cases). For the same reason every process
 * of the run shares one V8 compile cache (NODE_COMPILE_CACHE): it roughly halves the loading of
 * the test processes, the PGlite threads and the `mailroom serve`/CLI children the tests start.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { globSync, readFileSync, rmSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

/**
 * Seconds each run took with the suite at 4 runs at a time on the 2-core machine (approximate;
 * only the order matters). Unlisted files are shorter and start last. Keys `file engine` make that
 * file one run per engine: the longest files, whose halves together would be the longest run by
 * far. Only a file whose every test is inside its `for (const engine of ENGINES)` loop may be
 * split: anything else in it (a test outside the loop, one that runs `engine === ENGINES[0]` only)
 * would run once per engine.
 */
const ESTIMATES: Record<string, number> = {
  'test/crash.test.ts pglite': 290,
  'test/crash.test.ts postgres': 50,
  'test/campaigns.test.ts pglite': 240,
  'test/campaigns.test.ts postgres': 195,
  'test/campaign-crash.test.ts pglite': 220,
  'test/campaign-crash.test.ts postgres': 125,
  'test/campaign-world-centralized.test.ts': 180,
  'test/campaign-world-decentralized.test.ts': 160,
  'test/send-crash.test.ts': 155,
  'test/campaign-two-processes.test.ts': 150,
  'test/campaign-patterns.test.ts': 105,
  'test/campaign-cli.test.ts': 100,
  'test/campaign-engine.test.ts': 80,
  'test/campaign-safety.test.ts': 65,
  'test/limits.test.ts': 60,
  'test/idempotency.test.ts': 55,
  'test/campaign-late-reply.test.ts': 55,
  'test/corpora.test.ts': 55,
  'test/events.test.ts': 45,
  'test/send.test.ts': 45,
  'test/sdk.test.ts': 45,
  'test/drafts.test.ts': 45,
  'test/campaign-world.test.ts': 45,
  'test/smtp-policy.test.ts': 45,
  'test/mcp.test.ts': 45,
  'test/console-campaigns.test.ts': 40,
  'test/console.test.ts': 40,
};

const ENGINE_NAMES = ['pglite', 'postgres'];

const argv = process.argv.slice(2);
const fileArgs = argv.filter((a) => !a.startsWith('-'));
// The scheduler's own concurrency: one file per run, so `--test-concurrency` means nothing inside one.
const concurrencyFlag = argv.find((a) => a.startsWith('--test-concurrency='));
const flags = argv.filter((a) => a.startsWith('-') && a !== concurrencyFlag);
const concurrency = Math.max(1, Number(concurrencyFlag?.split('=')[1] ?? process.env.MAILROOM_TEST_CONCURRENCY ?? '4') || 4);

// Inherited by every process of the run. Kept between runs: node checks each entry against the source.
const compileCache = process.env.NODE_COMPILE_CACHE || path.join(tmpdir(), 'mailroom-test-compile-cache');

// Parsed as test/helpers/mailroom.ts parses it (not imported: that module loads the whole server).
const engines = (process.env.MAILROOM_TEST_ENGINES ?? 'pglite,postgres').split(',').map((e) => e.trim()).filter((e) => ENGINE_NAMES.includes(e));

interface Run {
  file: string;
  /** Set when the file runs one process per engine: this run's MAILROOM_TEST_ENGINES. */
  engine?: string;
  name: string;
  estimate: number;
}

interface Result {
  run: Run;
  ok: boolean;
  why: string;
  seconds: number;
  counts: Record<string, number>;
}

function expand(arg: string): string[] {
  try {
    if (statSync(arg).isDirectory()) return globSync(path.join(arg, '**/*.test.ts'));
  } catch { /* not a path: a glob, or a typo node will report */ }
  const found = globSync(arg);
  // Relative to the repository, as ESTIMATES names them.
  return (found.length ? found : [arg]).map((f) => path.relative(process.cwd(), path.resolve(f)));
}

function plan(): Run[] {
  const files = [...new Set((fileArgs.length ? fileArgs : ['test/**/*.test.ts']).flatMap(expand))].sort();
  const runs: Run[] = [];
  for (const file of files) {
    // Only a file that loops over ENGINES can be split: the others (unit tests, or one fixed
    // engine) ignore MAILROOM_TEST_ENGINES and would run the same cases twice.
    let perEngine = false;
    try { perEngine = /\bENGINES\b/.test(readFileSync(file, 'utf8')); } catch { /* node reports a missing file */ }
    const split = perEngine && engines.some((e) => `${file} ${e}` in ESTIMATES);
    if (!split) runs.push({ file, name: file, estimate: ESTIMATES[file] ?? 0 });
    else for (const engine of engines) runs.push({ file, engine, name: `${file} [${engine}]`, estimate: ESTIMATES[`${file} ${engine}`] ?? 0 });
  }
  // Longest first (a stable sort: unlisted files keep their alphabetical order).
  return runs.sort((a, b) => b.estimate - a.estimate);
}

const running = new Set<ChildProcess>();

async function execute(run: Run, dir: string, index: number): Promise<Result> {
  const tap = path.join(dir, `${index}.tap`);
  const args = [
    // Names the file and the caller when a test process exits early (see the file).
    '--import', './test/helpers/exit-trace.ts',
    '--test',
    '--test-timeout=600000',
    // The spec report is what a reader sees; the TAP copy gives the counts for the summary.
    '--test-reporter=spec', '--test-reporter-destination=stdout',
    '--test-reporter=tap', `--test-reporter-destination=${tap}`,
    ...flags,
    run.file,
  ];
  const env = { ...process.env, NODE_COMPILE_CACHE: compileCache, ...(run.engine ? { MAILROOM_TEST_ENGINES: run.engine } : {}) };
  const started = Date.now();
  // Its own process group, so that an interrupt can end the run with every process it started.
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  running.add(child);
  const output: Buffer[] = [];
  child.stdout!.on('data', (b: Buffer) => output.push(b));
  child.stderr!.on('data', (b: Buffer) => output.push(b));
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => {
    child.on('error', (err) => { output.push(Buffer.from(`${err.stack}\n`)); resolve([null, null]); });
    child.on('close', (c, s) => resolve([c, s]));
  });
  running.delete(child);
  const seconds = (Date.now() - started) / 1000;

  const counts: Record<string, number> = {};
  const report = await readFile(tap, 'utf8').catch(() => '');
  for (const m of report.matchAll(/^# (tests|suites|pass|fail|cancelled|skipped|todo) (\d+)$/gm)) counts[m[1]] = Number(m[2]);
  const text = Buffer.concat(output).toString('utf8');
  // A test process that calls process.exit(0) ends before its remaining tests, and node's runner
  // then reports the file as passed: exit-trace.ts names the caller of every process.exit, and
  // only the runner's own (with --test-force-exit) is expected.
  const exited = [...text.matchAll(/process\.exit\(([^)]*)\) called\nError: exit stack\n\s*at process\.exit .*\n\s*at (.*)/g)]
    .find((m) => !m[2].includes('node:internal/test_runner'));
  // A run that died early (process.exit, crash, signal) may have exited 0 or written no summary.
  const why = signal ? `killed by ${signal}`
    : code !== 0 ? `exit code ${code}`
    : exited ? `the test process called process.exit(${exited[1]}) at ${exited[2]}`
    : counts.tests === undefined ? 'no test summary (the run ended early)'
    : counts.fail || counts.cancelled ? `${counts.fail} failed, ${counts.cancelled} cancelled`
    : '';
  const result = { run, ok: !why, why, seconds, counts };

  const status = result.ok ? 'ok' : `FAILED: ${why}`;
  process.stdout.write(`\n━━ ${run.name}: ${status} (${seconds.toFixed(1)} s)\n${text}━━ end ${run.name}\n`);
  return result;
}

const runs = plan();
const dir = await mkdtemp(path.join(tmpdir(), 'mailroom-test-'));

// The runs are in process groups of their own, out of reach of the terminal's Ctrl-C: pass it on.
function interrupt(signal: NodeJS.Signals): void {
  for (const child of running) {
    try { process.kill(-child.pid!, 'SIGTERM'); } catch { /* already gone */ }
  }
  rmSync(dir, { recursive: true, force: true });
  process.exit(signal === 'SIGINT' ? 130 : 143);
}
process.on('SIGINT', interrupt);
process.on('SIGTERM', interrupt);

const started = Date.now();
console.log(`${runs.length} test runs, ${concurrency} at a time (engines: ${engines.join(', ') || 'none'})`);
const results: Result[] = [];
let next = 0;
await Promise.all(Array.from({ length: Math.min(concurrency, runs.length) }, async () => {
  while (next < runs.length) {
    const index = next++;
    console.log(`▶ ${runs[index].name}`);
    results.push(await execute(runs[index], dir, index));
  }
}));
await rm(dir, { recursive: true, force: true });

const total = (key: string) => results.reduce((n, r) => n + (r.counts[key] ?? 0), 0);
const failed = results.filter((r) => !r.ok);
console.log('\n━━ Runs by wall time');
for (const r of [...results].sort((a, b) => b.seconds - a.seconds)) {
  console.log(`${r.seconds.toFixed(1).padStart(7)} s  ${r.ok ? 'ok    ' : 'FAILED'}  ${r.run.name}`);
}
console.log(`\ntests ${total('tests')}, pass ${total('pass')}, fail ${total('fail')}, cancelled ${total('cancelled')}, skipped ${total('skipped')}, todo ${total('todo')}`);
console.log(`${results.length} runs, ${failed.length} failed; wall time ${((Date.now() - started) / 1000).toFixed(1)} s`);
for (const r of failed) console.log(`FAILED ${r.run.name}: ${r.why}`);
process.exitCode = failed.length ? 1 : 0;
