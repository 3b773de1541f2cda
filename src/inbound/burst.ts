import { performance } from 'node:perf_hooks';

/**
 * Ingest yields to bursts of incoming mail. While BURST_ACCEPTS messages were accepted within the
 * last BURST_WINDOW_MS (200 a second or more), ingest starts no new batch — for MAX_DEFER_MS at
 * most. Parsing, scoring and writing a message cost several times what accepting it does
 * (bench/README.md), and on a small machine doing them during a burst slowed every `250`; the
 * burst's messages are durable already, and become readable at most MAX_DEFER_MS later than they
 * would otherwise start being parsed. A trickle of mail is never deferred.
 */
export const BURST_ACCEPTS = 10;
export const BURST_WINDOW_MS = 50;
export const MAX_DEFER_MS = 2000;

export class Burst {
  /** When the last BURST_ACCEPTS messages were accepted (a ring). */
  readonly #recent = new Float64Array(BURST_ACCEPTS).fill(-Infinity);
  #at = 0;
  #closed = false;

  /** A message was accepted. */
  accepted(): void {
    this.#recent[this.#at++ % BURST_ACCEPTS] = performance.now();
  }

  /** Whether mail is arriving in a burst right now. */
  get active(): boolean {
    return !this.#closed && performance.now() - this.#recent[this.#at % BURST_ACCEPTS] < BURST_WINDOW_MS;
  }

  /**
   * Resolves once no burst is on, or once the oldest message waiting (accepted at `since`,
   * performance.now() time) has waited MAX_DEFER_MS, or at once when `enough()` says so.
   */
  async settle(since = performance.now(), enough: () => boolean = () => false): Promise<void> {
    while (this.active && performance.now() - since < MAX_DEFER_MS && !enough()) {
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Shutting down: nothing waits any more. */
  close(): void {
    this.#closed = true;
  }
}
