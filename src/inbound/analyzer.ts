import { availableParallelism } from 'node:os';
import type { BlobStore } from '../store/blobs.ts';
import type { Store } from '../store/database.ts';
import { ThreadPool } from '../threads/pool.ts';
import { toBuffer } from '../threads/serve.ts';
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

/** Messages per chunk handed to one thread at least: smaller chunks cost more in messaging than they gain. */
const MIN_CHUNK = 8;

export class ThreadPoolAnalyzer implements Analyzer {
  readonly #pool: ThreadPool<AnalyzeInput[], Analysis[]>;
  readonly #blobs: BlobStore;

  constructor(opts: { threads: number; setup: WorkerSetup; blobs: BlobStore }) {
    this.#pool = new ThreadPool({ url: new URL('./analyze-worker.ts', import.meta.url), workerData: opts.setup, threads: opts.threads, name: 'analysis' });
    this.#blobs = opts.blobs;
  }

  get threads(): number {
    return this.#pool.threads;
  }

  async analyze(inputs: AnalyzeInput[]): Promise<Analysis[]> {
    if (!inputs.length) return [];
    const chunks = Math.max(1, Math.min(this.#pool.threads, Math.floor(inputs.length / MIN_CHUNK)));
    const per = Math.ceil(inputs.length / chunks);
    const parts: Promise<Analysis[]>[] = [];
    for (let i = 0; i < inputs.length; i += per) {
      const chunk = inputs.slice(i, i + per);
      parts.push(this.#pool.run(chunk, chunk.length));
    }
    const results = (await Promise.all(parts)).flat();
    // What the thread could not store (blobs are rows on PostgreSQL) is stored here; structured
    // clone turned the bodies into Uint8Arrays.
    for (const r of results) {
      for (const a of r.attachments) {
        if (a.sha256 !== null || !a.content) continue;
        a.sha256 = await this.#blobs.put(toBuffer(a.content));
        delete a.content;
      }
    }
    return results;
  }

  close(): Promise<void> {
    return this.#pool.close();
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
