import { Worker } from 'node:worker_threads';
import { MailroomError, type ErrorCode } from '../errors.ts';

/**
 * A pool of worker threads running one kind of task (the module at `url` calls `serveTasks`,
 * threads/serve.ts). Used where CPU work would otherwise hold up the event loop that answers
 * SMTP and HTTP: inbound analysis (inbound/analyzer.ts) and outbound composing and signing
 * (outbound/prepare.ts).
 *
 * Threads start on demand: most Mailrooms (every test's) run a handful of tasks, and a thread costs
 * a few hundred milliseconds of CPU to load its modules. A task goes to an idle running thread,
 * else to a new one while the pool may grow, else to the least loaded. A thread that dies (out of
 * memory on a hostile input, a bug) fails the tasks it held, and the next task gets a fresh one.
 */
interface Task { resolve: (r: any) => void; reject: (e: Error) => void; size: number }

interface Slot { worker: Worker; tasks: Map<number, Task>; load: number }

/** An error as it crosses the thread boundary (structured clone keeps no class, and drops `code`). */
export interface WireError { message: string; name?: string; code?: string; stack?: string; details?: unknown }

/** The error a task's caller sees: a MailroomError again when the thread threw one, so the edge maps it as before. */
export function fromWire(e: WireError): Error {
  if (e.name === 'MailroomError') return Object.assign(new MailroomError(e.code as ErrorCode, e.message, { details: e.details }), { stack: e.stack });
  return Object.assign(new Error(e.message), { code: e.code, stack: e.stack });
}

export class ThreadPool<I, O> {
  readonly #url: URL;
  readonly #workerData: unknown;
  readonly #size: number;
  readonly #name: string;
  #slots: (Slot | null)[];
  #seq = 0;
  #closed = false;

  constructor(opts: { url: URL; workerData?: unknown; threads: number; name: string }) {
    this.#url = opts.url;
    this.#workerData = opts.workerData;
    this.#size = Math.max(1, opts.threads);
    this.#name = opts.name;
    this.#slots = Array.from({ length: this.#size }, () => null);
  }

  get threads(): number {
    return this.#size;
  }

  #slot(i: number): Slot {
    const existing = this.#slots[i];
    if (existing) return existing;
    const worker = new Worker(this.#url, { workerData: this.#workerData });
    const slot: Slot = { worker, tasks: new Map(), load: 0 };
    const fail = (err: Error) => {
      if (this.#slots[i] === slot) this.#slots[i] = null;
      for (const t of slot.tasks.values()) t.reject(err);
      slot.tasks.clear();
    };
    worker.on('message', (m: { id: number; result?: O; error?: WireError }) => {
      const task = slot.tasks.get(m.id);
      if (!task) return;
      slot.tasks.delete(m.id);
      slot.load -= task.size;
      if (m.error) task.reject(fromWire(m.error));
      else task.resolve(m.result!);
    });
    worker.on('error', (err) => fail(err));
    worker.on('exit', (code) => fail(new Error(`${this.#name} thread exited (code ${code})`)));
    worker.unref();
    this.#slots[i] = slot;
    return slot;
  }

  /** Runs one task; `size` weighs it for the choice of thread (a batch of n counts n). */
  run(input: I, size = 1): Promise<O> {
    if (this.#closed) return Promise.reject(new Error(`${this.#name} is closed`));
    let best = this.#slots.findIndex((x) => x !== null && x.load === 0);
    if (best < 0) best = this.#slots.findIndex((x) => x === null);
    if (best < 0) {
      best = 0;
      for (let i = 1; i < this.#size; i++) if (this.#slots[i]!.load < this.#slots[best]!.load) best = i;
    }
    const slot = this.#slot(best);
    const id = ++this.#seq;
    return new Promise((resolve, reject) => {
      slot.tasks.set(id, { resolve, reject, size });
      slot.load += size;
      slot.worker.postMessage({ id, input });
    });
  }

  /** For tests: ends the running threads as a crash would (their tasks fail; the next task starts a new one). */
  async crashForTest(): Promise<void> {
    await Promise.all(this.#slots.map((s) => s?.worker.terminate()));
  }

  async close(): Promise<void> {
    this.#closed = true;
    const slots = this.#slots.filter((s): s is Slot => s !== null);
    this.#slots = this.#slots.map(() => null);
    await Promise.all(slots.map(async (s) => {
      for (const t of s.tasks.values()) t.reject(new Error(`${this.#name} is closed`));
      s.tasks.clear();
      await s.worker.terminate();
    }));
  }
}
