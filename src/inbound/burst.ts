import { performance } from 'node:perf_hooks';

/**
 * Ingest yields to bursts of incoming mail. While BURST_ACCEPTS messages were accepted within the
 * last BURST_WINDOW_MS (200 a second or more), ingest starts no new batch — for MAX_DEFER_MS at
 * most, MAX_DEFER_SMTP_MS when the burst is SMTP mail only. Parsing, scoring and writing a message
 * cost several times what accepting it does (bench/README.md), and on a small machine doing them
 * during a burst slowed every `250`; the burst's messages are durable already, and start being
 * parsed at most that much later than they otherwise would. A trickle of mail is never deferred.
 */
export const BURST_ACCEPTS = 10;
export const BURST_WINDOW_MS = 50;
export const MAX_DEFER_MS = 2000;
/**
 * The cap while the burst is SMTP mail only. Deferring parsing does not slow it down on a
 * CPU-bound machine — the same work is done, after the burst instead of during it — while parsing
 * during the burst halved the accept rate: `npm run bench:inbound`, 10,000 messages at about
 * 3,000/s, embedded: 1,131 accepted/s and 650 parsed/s with a 2 s cap, 2,660 and 669 with 10 s
 * (bench/README.md). What it costs: the first messages of a long SMTP burst become readable up to
 * 10 s later. Mail delivered locally (Mailroom to its own inboxes, which campaigns wait on) keeps
 * the 2 s cap: no SMTP client waits for it.
 */
export const MAX_DEFER_SMTP_MS = 10_000;

export class Burst {
  /** When the last BURST_ACCEPTS messages were accepted (a ring). */
  readonly #recent = new Float64Array(BURST_ACCEPTS).fill(-Infinity);
  #at = 0;
  #closed = false;
  /** When a message was last accepted other than over SMTP. */
  #localAt = -Infinity;

  /** A message was accepted: over SMTP, or delivered locally (`smtp` false). */
  accepted(smtp = false): void {
    const now = performance.now();
    this.#recent[this.#at++ % BURST_ACCEPTS] = now;
    if (!smtp) this.#localAt = now;
  }

  /** How long a waiting message may be deferred: longer while the burst is SMTP mail only. */
  get #maxDefer(): number {
    return performance.now() - this.#localAt < BURST_WINDOW_MS ? MAX_DEFER_MS : MAX_DEFER_SMTP_MS;
  }

  /** Whether mail is arriving in a burst right now. */
  get active(): boolean {
    return !this.#closed && performance.now() - this.#recent[this.#at % BURST_ACCEPTS] < BURST_WINDOW_MS;
  }

  /**
   * Resolves once no burst is on, or once the oldest message waiting (accepted at `since`,
   * performance.now() time) has waited MAX_DEFER_MS (MAX_DEFER_SMTP_MS for a burst of SMTP mail
   * only), or at once when `enough()` says so.
   */
  async settle(since = performance.now(), enough: () => boolean = () => false): Promise<void> {
    while (this.active && performance.now() - since < this.#maxDefer && !enough()) {
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Shutting down: nothing waits any more. */
  close(): void {
    this.#closed = true;
  }
}
