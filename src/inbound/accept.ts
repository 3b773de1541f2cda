import path from 'node:path';
import type { PgBoss } from 'pg-boss';
import { isTransientStorageError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Store } from '../store/database.ts';
import { recordReceipts, type ReceiptEnvelope } from './receipts.ts';
import { Spool } from './spool.ts';

/**
 * The promise behind SMTP `250`: `accept` resolves only once the raw message and its delivery to
 * every accepted recipient are durably committed, all or nothing. Two implementations, one per
 * engine, because durability comes from a different place in each (see docs/architecture.md).
 */
export interface Acceptor {
  accept(envelope: ReceiptEnvelope, raw: Buffer): Promise<void>;
  close(): Promise<void>;
}

/**
 * PostgreSQL: one transaction holds the raw blobs, the receipts, their deliveries and the ingest
 * job; its COMMIT (synchronous_commit on) is the fsync that the `250` waits for.
 *
 * Group commit, as the spool does: accepts that arrive while a commit is running are committed
 * together in the next one, so ten connections share one transaction and one WAL flush instead of
 * paying ten. If a group fails, its messages are retried one transaction each, so one message the
 * database refuses is answered 451 alone and the others still get their 250.
 */
export class DatabaseAcceptor implements Acceptor {
  readonly #store: Store;
  readonly #boss: PgBoss;
  #queue: { envelope: ReceiptEnvelope; raw: Buffer; resolve: () => void; reject: (e: Error) => void }[] = [];
  #running: Promise<void> | null = null;
  static readonly MAX_GROUP = 100;

  constructor(store: Store, boss: PgBoss) {
    this.#store = store;
    this.#boss = boss;
  }

  accept(envelope: ReceiptEnvelope, raw: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ envelope, raw, resolve, reject });
      this.#running ??= this.#loop();
    });
  }

  async #commit(items: { envelope: ReceiptEnvelope; raw: Buffer }[]): Promise<void> {
    await this.#store.db.transaction().execute(async (trx) => {
      const receipts = [];
      for (const { envelope, raw } of items) receipts.push({ envelope, sha256: await this.#store.blobs.put(raw, trx), size: raw.length });
      await recordReceipts(trx, this.#boss, receipts);
    });
  }

  async #loop(): Promise<void> {
    try {
      while (this.#queue.length) {
        const group = this.#queue.splice(0, DatabaseAcceptor.MAX_GROUP);
        try {
          await this.#commit(group);
          for (const g of group) g.resolve();
        } catch (err) {
          if (group.length === 1) {
            group[0].reject(err as Error);
            continue;
          }
          for (const g of group) await this.#commit([g]).then(g.resolve, g.reject);
        }
      }
    } finally {
      this.#running = null;
    }
  }

  async close(): Promise<void> {
    await this.#running;
  }
}

interface Spooled {
  envelope: ReceiptEnvelope;
  raw: Buffer;
}

/**
 * Embedded (PGlite, fsync off): the `250` waits for the spool's fdatasync. The rows are derived
 * from the spool right after, in batches, by a single writer — never on the `250` path, because
 * PGlite has one connection and ~0.1 ms per statement. A record leaves the spool once its rows
 * (and its ingest job) are committed; anything left at start-up is written again, idempotently.
 */
export class SpoolAcceptor implements Acceptor {
  readonly #store: Store;
  readonly #boss: PgBoss;
  readonly #log: Logger;
  readonly #spool: Spool<ReceiptEnvelope>;
  #backlog: Spooled[] = [];
  #backlogBytes = 0;
  #writing: Promise<void> | null = null;
  #drained: (() => void)[] = [];
  /** Above this many bytes waiting for the database, new messages wait before being accepted. */
  static readonly MAX_BACKLOG_BYTES = 256 * 1024 * 1024;

  private constructor(store: Store, boss: PgBoss, log: Logger, spool: Spool<ReceiptEnvelope>) {
    this.#store = store;
    this.#boss = boss;
    this.#log = log;
    this.#spool = spool;
  }

  static async open(store: Store, boss: PgBoss, log: Logger, dataDir: string): Promise<SpoolAcceptor> {
    const { spool, recovered } = await Spool.open<ReceiptEnvelope>(path.join(dataDir, 'spool'), (h) => h.id);
    const acceptor = new SpoolAcceptor(store, boss, log, spool);
    if (recovered.length) {
      log.info({ count: recovered.length }, 'spool recovery: re-committing messages accepted before the last stop');
      for (const r of recovered) acceptor.#enqueue({ envelope: r.header, raw: r.raw });
      await acceptor.flush();
    }
    return acceptor;
  }

  async accept(envelope: ReceiptEnvelope, raw: Buffer): Promise<void> {
    while (this.#backlogBytes > SpoolAcceptor.MAX_BACKLOG_BYTES) {
      await new Promise<void>((r) => this.#drained.push(r));
    }
    await this.#spool.append(envelope.id, envelope, raw);
    this.#enqueue({ envelope, raw });
  }

  /** Resolves when everything accepted so far is in the database. */
  async flush(): Promise<void> {
    while (this.#writing || this.#backlog.length) {
      await (this.#writing ?? Promise.resolve());
      if (!this.#writing && this.#backlog.length) this.#writing = this.#writeLoop();
    }
  }

  get spool(): Spool<ReceiptEnvelope> {
    return this.#spool;
  }

  async close(): Promise<void> {
    await this.flush().catch(() => {});
    await this.#spool.close();
  }

  #enqueue(item: Spooled): void {
    this.#backlog.push(item);
    this.#backlogBytes += item.raw.length;
    this.#writing ??= this.#writeLoop();
  }

  async #commit(batch: Spooled[]): Promise<void> {
    const receipts: { envelope: ReceiptEnvelope; sha256: string; size: number }[] = [];
    for (const item of batch) {
      const sha256 = await this.#store.blobs.put(item.raw);
      receipts.push({ envelope: item.envelope, sha256, size: item.raw.length });
    }
    await this.#store.db.transaction().execute((trx) => recordReceipts(trx, this.#boss, receipts));
  }

  #done(items: Spooled[], release: boolean): void {
    const gone = new Set(items);
    this.#backlog = this.#backlog.filter((i) => !gone.has(i));
    for (const item of items) {
      this.#backlogBytes -= item.raw.length;
      if (release) this.#spool.release(item.envelope.id);
    }
    for (const wake of this.#drained.splice(0)) wake();
  }

  async #writeLoop(): Promise<void> {
    let delay = 100;
    try {
      while (this.#backlog.length) {
        const batch = this.#backlog.slice(0, 200);
        try {
          await this.#commit(batch);
          this.#done(batch, true);
          delay = 100;
          continue;
        } catch (err) {
          if (isTransientStorageError(err)) {
            // Disk full, database gone: the records are safe in the spool; wait and try again.
            this.#log.error({ err, count: batch.length }, 'could not move spooled messages into the database; retrying');
            await new Promise((r) => setTimeout(r, delay));
            delay = Math.min(delay * 2, 10_000);
            continue;
          }
        }
        // A non-transient failure: find the record that causes it, one by one, so that one bad
        // record cannot hold up every message behind it. A record that still fails alone was
        // acknowledged, so it is never dropped: it stays in the spool (not released) and is tried
        // again at the next start, and an operator sees it in the log.
        for (const item of batch) {
          try {
            await this.#commit([item]);
            this.#done([item], true);
          } catch (err) {
            if (isTransientStorageError(err)) break; // back to the outer loop's backoff
            this.#log.error({ err, receipt: item.envelope.id }, 'a spooled message cannot be written to the database; it stays in the spool and is retried at the next start');
            this.#done([item], false);
          }
        }
      }
    } finally {
      this.#writing = null;
    }
  }
}

