import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { BlobStore } from '../store/blobs.ts';
import type { Store } from '../store/database.ts';
import { analyzeMessages, type Analysis, type AnalyzeInput, type AuthOptions } from './analyze.ts';

/**
 * Runs `analyzeMessages` (parse, kind, authentication, reply, injection; see analyze.ts) for ingest.
 * Every result comes back with its attachment bodies stored.
 *
 * Two implementations: on the calling thread (tests, and whenever no threads are wanted), and a
 * pool of worker threads. The pool is what lets ingest keep pace with SMTP: that work is about
 * 0.7 ms of CPU per small message (bench/README.md), which on the main thread delayed every SMTP
 * reply and left the machine's other core idle while the database thread waited.
 */
export interface Analyzer {
  analyze(inputs: AnalyzeInput[]): Promise<Analysis[]>;
  close(): Promise<void>;
}

/** What a pool's threads need to compute `security.auth`: everything serialisable, no functions. */
export interface PoolAuthOptions { authservId: string; dnsServers: string[]; trustedDomains: string[] }

/** workerData of analyze-worker.ts. */
export interface WorkerSetup {
  auth: PoolAuthOptions | null;
  /** Embedded mode: the file blob store's root, written to directly by the thread. */
  blobRoot: string | null;
}

export class InlineAnalyzer implements Analyzer {
  readonly #blobs: BlobStore;
  readonly #auth: AuthOptions | null;

  constructor(blobs: BlobStore, auth?: AuthOptions | null) {
    this.#blobs = blobs;
    this.#auth = auth ?? null;
  }

  analyze(inputs: AnalyzeInput[]): Promise<Analysis[]> {
    return analyzeMessages(inputs, { auth: this.#auth, blobs: this.#blobs });
  }

  async close(): Promise<void> {}
}

interface Task { resolve: (r: Analysis[]) => void; reject: (e: Error) => void; size: number }

interface Slot { worker: Worker; tasks: Map<number, Task>; load: number }

/** Messages per chunk handed to one thread at least: smaller chunks cost more in messaging than they gain. */
const MIN_CHUNK = 8;

export class ThreadPoolAnalyzer implements Analyzer {
  readonly #setup: WorkerSetup;
  readonly #size: number;
  readonly #blobs: BlobStore;
  #slots: (Slot | null)[];
  #seq = 0;
  #closed = false;

  constructor(opts: { threads: number; setup: WorkerSetup; blobs: BlobStore }) {
    this.#setup = opts.setup;
    this.#size = Math.max(1, opts.threads);
    this.#blobs = opts.blobs;
    // Threads start on demand: most Mailrooms (every test's) parse a handful of messages, and a
    // thread costs a few hundred milliseconds of CPU to load its modules.
    this.#slots = Array.from({ length: this.#size }, () => null);
  }

  get threads(): number {
    return this.#size;
  }

  #slot(i: number): Slot {
    const existing = this.#slots[i];
    if (existing) return existing;
    const worker = new Worker(new URL('./analyze-worker.ts', import.meta.url), { workerData: this.#setup });
    const slot: Slot = { worker, tasks: new Map(), load: 0 };
    // A thread that dies (out of memory on a hostile message, a bug) fails what it held, and the
    // next batch gets a fresh one; the callers retry (spool writer, job) as after any error.
    const fail = (err: Error) => {
      if (this.#slots[i] === slot) this.#slots[i] = null;
      for (const t of slot.tasks.values()) t.reject(err);
      slot.tasks.clear();
    };
    worker.on('message', (m: { id: number; results?: Analysis[]; error?: { message: string; code?: string; stack?: string } }) => {
      const task = slot.tasks.get(m.id);
      if (!task) return;
      slot.tasks.delete(m.id);
      slot.load -= task.size;
      if (m.error) task.reject(Object.assign(new Error(m.error.message), { code: m.error.code, stack: m.error.stack }));
      else task.resolve(m.results!);
    });
    worker.on('error', (err) => fail(err));
    worker.on('exit', (code) => fail(new Error(`analysis thread exited (code ${code})`)));
    worker.unref();
    this.#slots[i] = slot;
    return slot;
  }

  #run(inputs: AnalyzeInput[]): Promise<Analysis[]> {
    if (this.#closed) return Promise.reject(new Error('analyzer is closed'));
    // An idle running thread, else a new one while the pool may grow, else the least loaded.
    let best = this.#slots.findIndex((x) => x !== null && x.load === 0);
    if (best < 0) best = this.#slots.findIndex((x) => x === null);
    if (best < 0) {
      best = 0;
      for (let i = 1; i < this.#size; i++) if (this.#slots[i]!.load < this.#slots[best]!.load) best = i;
    }
    const slot = this.#slot(best);
    const id = ++this.#seq;
    return new Promise((resolve, reject) => {
      slot.tasks.set(id, { resolve, reject, size: inputs.length });
      slot.load += inputs.length;
      slot.worker.postMessage({ id, inputs });
    });
  }

  async analyze(inputs: AnalyzeInput[]): Promise<Analysis[]> {
    if (!inputs.length) return [];
    const chunks = Math.max(1, Math.min(this.#size, Math.floor(inputs.length / MIN_CHUNK)));
    const per = Math.ceil(inputs.length / chunks);
    const parts: Promise<Analysis[]>[] = [];
    for (let i = 0; i < inputs.length; i += per) parts.push(this.#run(inputs.slice(i, i + per)));
    const results = (await Promise.all(parts)).flat();
    // What the thread could not store (blobs are rows on PostgreSQL) is stored here; structured
    // clone turned the bodies into Uint8Arrays.
    for (const r of results) {
      for (const a of r.attachments) {
        if (a.sha256 !== null || !a.content) continue;
        a.sha256 = await this.#blobs.put(Buffer.from(a.content.buffer, a.content.byteOffset, a.content.byteLength));
        delete a.content;
      }
    }
    return results;
  }

  async close(): Promise<void> {
    this.#closed = true;
    const slots = this.#slots.filter((s): s is Slot => s !== null);
    this.#slots = this.#slots.map(() => null);
    await Promise.all(slots.map(async (s) => {
      for (const t of s.tasks.values()) t.reject(new Error('analyzer is closed'));
      s.tasks.clear();
      await s.worker.terminate();
    }));
  }
}

/**
 * The analyzer for a running Mailroom: a pool of `threads` worker threads (default: as many as
 * cores, at least 2, at most 4). Embedded mode passes the file blob store's root so the threads
 * write attachment files themselves; on PostgreSQL blobs are rows, stored by the calling thread.
 * The threads run at the process's priority. A lower one (nice 10 was tried) starved ingest on a
 * machine shared with other work; what keeps parsing from slowing the SMTP replies is that ingest
 * yields to bursts of mail (burst.ts).
 */
export function createAnalyzer(store: Store, opts: { auth: PoolAuthOptions | null; threads?: number }): Analyzer {
  const threads = opts.threads ?? Math.min(4, Math.max(2, availableParallelism()));
  return new ThreadPoolAnalyzer({ threads, blobs: store.blobs, setup: { auth: opts.auth, blobRoot: store.blobs.root ?? null } });
}
