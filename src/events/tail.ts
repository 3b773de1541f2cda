import type { EventFeed } from './feed.ts';

/**
 * Tells waiting readers (SSE streams, wait-for-reply, the webhook dispatcher) that the event log
 * moved. One query per tick for the whole process, whatever the number of readers, and only while
 * someone listens: each reader then reads its own page through the feed with its own filters.
 * Polling rather than LISTEN/NOTIFY because it works unchanged on PGlite and on PostgreSQL with any
 * number of processes, and a tick of a few hundred milliseconds is well inside what a reader of
 * email waits anyway.
 */
export class EventTail {
  readonly #feed: EventFeed;
  readonly #pollMs: number;
  readonly #listeners = new Set<() => void>();
  #timer: NodeJS.Timeout | null = null;
  #head: string | null = null;
  #polling = false;
  #stopped = false;

  constructor(feed: EventFeed, pollMs = 250) {
    this.#feed = feed;
    this.#pollMs = pollMs;
  }

  /** Calls `onAdvance` whenever new events become visible; returns the unsubscribe function. */
  subscribe(onAdvance: () => void): () => void {
    this.#listeners.add(onAdvance);
    if (!this.#timer && !this.#stopped) this.#timer = setInterval(() => void this.#tick(), this.#pollMs);
    return () => {
      this.#listeners.delete(onAdvance);
      if (!this.#listeners.size && this.#timer) { clearInterval(this.#timer); this.#timer = null; }
    };
  }

  async #tick(): Promise<void> {
    if (this.#polling) return; // a slow database must not pile queries up
    this.#polling = true;
    try {
      const head = await this.#feed.head();
      if (head !== this.#head) {
        this.#head = head;
        for (const fn of [...this.#listeners]) fn();
      }
    } catch {
      // The store is briefly unavailable (restart, failover): the next tick tries again.
    } finally {
      this.#polling = false;
    }
  }

  /**
   * Runs `check` now and again after every advance until it returns a value, the timeout passes
   * (→ null) or `signal` aborts (→ null). Checking again after subscribing closes the gap in which
   * the awaited thing could arrive between the first check and the subscription.
   */
  async waitFor<T>(check: () => Promise<T | null>, timeoutMs: number, signal?: AbortSignal): Promise<T | null> {
    const first = await check();
    if (first !== null || timeoutMs <= 0) return first;
    return new Promise<T | null>((resolve, reject) => {
      let done = false;
      let running = false;
      let again = false;
      const finish = (v: T | null, err?: unknown) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        unsubscribe();
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(err); else resolve(v);
      };
      const run = async () => {
        if (done) return;
        if (running) { again = true; return; }
        running = true;
        try {
          do {
            again = false;
            const v = await check();
            if (v !== null) return finish(v);
          } while (again && !done);
        } catch (err) {
          finish(null, err);
        } finally {
          running = false;
        }
      };
      const onAbort = () => finish(null);
      const timer = setTimeout(() => finish(null), timeoutMs);
      const unsubscribe = this.subscribe(() => void run());
      signal?.addEventListener('abort', onAbort, { once: true });
      void run();
    });
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    this.#listeners.clear();
  }

  /** The last head this tail saw (for tests and diagnostics). */
  get head(): string | null { return this.#head; }
}

