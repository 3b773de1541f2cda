import { sql, type Kysely } from 'kysely';
import type { Database } from './schema.ts';

/**
 * Keeps the planner's statistics of the tables that ingest grows, by running ANALYZE after every
 * so many new rows (1,000, then each time the table grew by a fifth: a geometric schedule, so the
 * total cost stays small however large the tables get).
 *
 * Why: PGlite runs no autovacuum, so the statistics stayed those of the empty tables, and with
 * them PostgreSQL lists an inbox by reading every one of its messages and sorting them (a bitmap
 * scan and a top-N sort) instead of walking an index backwards and stopping after a page: a poll of
 * the newest 50 cost 45 ms in an inbox of 5,000 messages, and grew with the inbox (bench/README.md).
 * On PostgreSQL autovacuum does it, but only a minute or more after a burst; running it here too
 * is harmless (ANALYZE takes a lock that lets reads and writes through).
 */
export class AutoAnalyze {
  readonly #db: Kysely<Database>;
  #since = 0;
  #base = 0;
  #running: Promise<void> | null = null;
  static readonly MIN_ROWS = 1000;
  static readonly GROWTH = 0.2;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  /** Called after a commit that added `rows` messages; resolves once any ANALYZE it started ended. */
  async added(rows: number): Promise<void> {
    this.#since += rows;
    if (this.#running || this.#since < Math.max(AutoAnalyze.MIN_ROWS, AutoAnalyze.GROWTH * this.#base)) return;
    this.#base += this.#since;
    this.#since = 0;
    this.#running = sql`ANALYZE messages, threads, events`.execute(this.#db).then(() => {}, () => {}).finally(() => { this.#running = null; });
    await this.#running;
  }
}
