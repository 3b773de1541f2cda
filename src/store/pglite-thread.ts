import { Worker } from 'node:worker_threads';

/**
 * A PGlite running in a worker thread (`pglite-worker.ts`), with the part of PGlite's interface
 * that pg-boss's `fromPglite` uses (Kysely's driver is pglite-dialect.ts): query, exec, transaction, listen,
 * close. Why: PGlite executes on the calling thread, so on the main thread every statement held up
 * the SMTP replies; see bench/README.md.
 */
type Pending = { resolve: (v: any) => void; reject: (e: Error) => void };

export interface QueryResult { rows: any[]; affectedRows?: number; fields: { name: string; dataTypeID: number }[] }

export interface PGliteTx {
  query<T = any>(sql: string, params?: unknown[], opts?: object): Promise<QueryResult & { rows: T[] }>;
  exec(sql: string): Promise<QueryResult[]>;
  rollback(): Promise<void>;
}

export class PGliteThread {
  readonly #worker: Worker;
  #seq = 0;
  #txSeq = 0;
  #pending = new Map<number, Pending>();
  #listeners = new Map<string, Set<(payload: string) => void>>();
  closed = false;
  ready = false;
  readonly waitReady: Promise<void>;

  constructor(dir: string | null) {
    this.#worker = new Worker(new URL('./pglite-worker.ts', import.meta.url), { workerData: { dir } });
    this.waitReady = new Promise((resolve, reject) => {
      this.#worker.once('error', reject);
      this.#worker.on('message', (m: any) => {
        if (m.ready) {
          this.ready = true;
          resolve();
          return;
        }
        if (m.notify !== undefined) {
          for (const cb of this.#listeners.get(m.notify) ?? []) cb(m.payload);
          return;
        }
        const p = this.#pending.get(m.id);
        if (!p) return;
        this.#pending.delete(m.id);
        if (m.error) p.reject(Object.assign(new Error(m.error.message), m.error));
        else p.resolve(m.result);
      });
    });
    // A crash of the database thread fails everything in flight rather than hanging it.
    this.#worker.on('error', (err) => {
      for (const p of this.#pending.values()) p.reject(err);
      this.#pending.clear();
    });
  }

  #call(msg: object): Promise<any> {
    if (this.closed) return Promise.reject(new Error('PGlite is closed'));
    const id = ++this.#seq;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ ...msg, id });
    });
  }

  /** A statement on its own, or in transaction `tx` (from `begin`). */
  query<T = any>(sql: string, params?: unknown[], opts?: object, tx?: number): Promise<QueryResult & { rows: T[] }> {
    return this.#call({ op: 'query', sql, params, opts, tx });
  }

  exec(sql: string): Promise<QueryResult[]> {
    return this.#call({ op: 'exec', sql });
  }

  /**
   * Opens a transaction on the thread and answers its id once it holds PGlite's transaction lock
   * (other transactions and plain statements queue behind it there). `query(…, tx)` runs in it;
   * `end` commits or rolls it back. Kysely's driver (pglite-dialect.ts) uses these directly.
   */
  async begin(): Promise<number> {
    const tx = ++this.#txSeq;
    await this.#call({ op: 'begin', tx });
    return tx;
  }

  end(tx: number, commit: boolean): Promise<void> {
    return this.#call({ op: commit ? 'commit' : 'rollback', tx });
  }

  async transaction<T>(fn: (tx: PGliteTx) => Promise<T>): Promise<T> {
    const tx = await this.begin();
    let rolledBack = false;
    const handle: PGliteTx = {
      query: (sql, params, opts) => this.query(sql, params, opts, tx),
      exec: (sql) => this.#call({ op: 'exec', sql, tx }),
      rollback: async () => {
        rolledBack = true;
      },
    };
    try {
      const result = await fn(handle);
      await this.end(tx, !rolledBack);
      return result;
    } catch (err) {
      await this.end(tx, false).catch(() => {});
      throw err;
    }
  }

  async listen(channel: string, cb: (payload: string) => void): Promise<() => Promise<void>> {
    let set = this.#listeners.get(channel);
    if (!set) {
      set = new Set();
      this.#listeners.set(channel, set);
      await this.#call({ op: 'listen', channel });
    }
    set.add(cb);
    return async () => {
      set!.delete(cb);
      if (!set!.size) {
        this.#listeners.delete(channel);
        await this.#call({ op: 'unlisten', channel }).catch(() => {});
      }
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.#call({ op: 'close' }).catch(() => {});
    this.closed = true;
    await this.#worker.terminate();
  }
}
