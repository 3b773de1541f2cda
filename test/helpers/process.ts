import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * `mailroom serve` as a real child process, for tests that kill -9 it. Ports come from the lines
 * `serve` prints once it is ready (start it with MAILROOM_HTTP_PORT=0 / MAILROOM_SMTP_PORT=0 and the
 * OS picks free ones). Every child started here is tracked; `killAllServes()` (call it in `after`)
 * and a process 'exit' hook make sure none outlives the test.
 */
const BIN = fileURLToPath(new URL('../../bin/mailroom.js', import.meta.url));
const MAX_OUTPUT = 1024 * 1024;

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) try { c.kill('SIGKILL'); } catch {}
});

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ServeProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** stdout and stderr as received so far (interleaved; the last MiB). */
  output(): string;
  /** Resolves with the ports once `serve` printed its HTTP and SMTP lines; rejects if it exits first. */
  readonly ready: Promise<{ httpPort: number; smtpPort: number }>;
  readonly exited: Promise<ExitStatus>;
  /** True once the process has exited. */
  readonly hasExited: boolean;
  /** Resolves when the output matches `re` (checked on every chunk); rejects on exit or timeout. */
  waitForOutput(re: RegExp, timeoutMs: number): Promise<RegExpExecArray>;
  /** SIGKILL, then waits for the exit. */
  kill9(): Promise<ExitStatus>;
  /** SIGTERM (a clean stop); SIGKILL after `timeoutMs`. */
  stop(timeoutMs?: number): Promise<ExitStatus>;
}

export function spawnServe(env: Record<string, string>): ServeProcess {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  delete childEnv.NODE_TEST_CONTEXT; // the child is a server, not a test file of this run
  const child = spawn(process.execPath, [BIN, 'serve'], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  let out = '';
  let exitStatus: ExitStatus | null = null;
  const listeners = new Set<() => void>();
  const onData = (d: Buffer) => {
    out += d.toString('utf8');
    if (out.length > MAX_OUTPUT) out = out.slice(-MAX_OUTPUT);
    for (const l of [...listeners]) l();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<ExitStatus>((resolve) => {
    child.once('exit', (code, signal) => {
      exitStatus = { code, signal };
      live.delete(child);
      // Let the pipes deliver what is left before waiters are told.
      setImmediate(() => {
        for (const l of [...listeners]) l();
        resolve(exitStatus!);
      });
    });
    child.once('error', () => {
      exitStatus ??= { code: null, signal: null };
      live.delete(child);
      resolve(exitStatus);
      for (const l of [...listeners]) l();
    });
  });

  const waitForOutput = (re: RegExp, timeoutMs: number): Promise<RegExpExecArray> =>
    new Promise((resolve, reject) => {
      const done = () => { listeners.delete(check); clearTimeout(timer); };
      const check = () => {
        const m = re.exec(out);
        if (m) { done(); resolve(m); return; }
        if (exitStatus) { done(); reject(new Error(`serve exited (${JSON.stringify(exitStatus)}) before printing ${re}:\n${out.slice(-4000)}`)); }
      };
      const timer = setTimeout(() => { done(); reject(new Error(`timed out after ${timeoutMs} ms waiting for ${re} from serve:\n${out.slice(-4000)}`)); }, timeoutMs);
      listeners.add(check);
      check();
    });

  const ready = (async () => {
    const m = await waitForOutput(/HTTP API\s+http:\/\/\S+?:(\d+)\b[\s\S]*?\n\s*SMTP\s+\S+?:(\d+)\s/, 120_000);
    return { httpPort: Number(m[1]), smtpPort: Number(m[2]) };
  })();
  ready.catch(() => {}); // observed by whoever awaits it; never an unhandled rejection

  const signalAndWait = async (signal: NodeJS.Signals): Promise<ExitStatus> => {
    if (!exitStatus) try { child.kill(signal); } catch {}
    return exited;
  };

  return {
    child,
    pid: child.pid!,
    output: () => out,
    ready,
    exited,
    get hasExited() { return exitStatus !== null; },
    waitForOutput,
    kill9: () => signalAndWait('SIGKILL'),
    async stop(timeoutMs = 30_000) {
      if (exitStatus) return exitStatus;
      const timer = setTimeout(() => { try { child.kill('SIGKILL'); } catch {} }, timeoutMs);
      try {
        return await signalAndWait('SIGTERM');
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** Spawns `serve` and waits until it is ready; kills it if it does not get there. */
export async function startServe(env: Record<string, string>): Promise<ServeProcess & { httpPort: number; smtpPort: number }> {
  const p = spawnServe(env);
  try {
    const ports = await p.ready;
    return Object.assign(p, ports);
  } catch (err) {
    await p.kill9();
    throw err;
  }
}

/** SIGKILLs every `serve` child still running and waits for them to exit. */
export async function killAllServes(): Promise<void> {
  await Promise.all([...live].map((c) => new Promise<void>((resolve) => {
    if (c.exitCode !== null || c.signalCode !== null) return resolve();
    c.once('exit', () => resolve());
    try { c.kill('SIGKILL'); } catch { resolve(); }
  })));
}
