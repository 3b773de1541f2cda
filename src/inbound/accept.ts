import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { PgBoss } from 'pg-boss';
import { isTransientStorageError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { AutoAnalyze } from '../store/auto-analyze.ts';
import { bulkInsert } from '../store/bulk.ts';
import type { Store } from '../store/database.ts';
import type { Analysis } from './analyze.ts';
import { InlineAnalyzer, type Analyzer } from './analyzer.ts';
import { Burst } from './burst.ts';
import { writeMessages, type IngestItem } from './ingest.ts';
import { acceptReceipts, recordReceipts, type ReceiptEnvelope } from './receipts.ts';
import { Spool } from './spool.ts';

/**
 * The promise behind SMTP `250`: `accept` resolves only once the raw message and its delivery to
 * every accepted recipient are durably committed, all or nothing. Two implementations, one per
 * engine, because durability comes from a different place in each (see docs/architecture.md).
 */
export interface Acceptor {
  /** `opts.smtp`: received over SMTP (a client waits for the `250`), as opposed to delivered locally. */
  accept(envelope: ReceiptEnvelope, raw: Buffer, opts?: AcceptOptions): Promise<void>;
  /**
   * Whether mail to this inbox was answered `250` but is not in the database yet (held in this
   * process only; what is in the database unparsed, receipts.ts `hasUnreadReceipt` tells).
   */
  holdsUnwritten(inboxId: string): boolean;
  close(): Promise<void>;
}

export interface AcceptOptions { smtp?: boolean }

/**
 * PostgreSQL: one transaction holds the raw blobs, the receipts, their deliveries and the ingest
 * job; its COMMIT (synchronous_commit on) is the fsync that the `250` waits for. Two statements
 * per transaction whatever the number of messages in it (receipts.ts `acceptReceipts`).
 *
 * Group commit, as the spool does: accepts that arrive while commits are running are committed
 * together in the next one, so ten connections share a few transactions and WAL flushes instead of
 * paying ten. Up to MAX_INFLIGHT groups commit at once, on separate connections, so a group need
 * not wait for the previous one's flush. If a group fails, its messages are retried one
 * transaction each, so one message the database refuses is answered 451 alone and the others
 * still get their 250.
 */
interface Waiting { envelope: ReceiptEnvelope; raw: Buffer; smtp: boolean; resolve: () => void; reject: (e: Error) => void }

export class DatabaseAcceptor implements Acceptor {
  readonly #store: Store;
  readonly #boss: PgBoss;
  #queue: Waiting[] = [];
  /** Mail arriving in a burst makes this process's ingest wait (burst.ts). */
  readonly burst = new Burst();
  /** Called after each commit: the local ingest worker is told there is work (it polls otherwise). */
  onCommitted: (() => void) | null = null;
  #inflight = new Set<Promise<void>>();
  static readonly MAX_GROUP = 100;
  static readonly MAX_INFLIGHT = 2;

  constructor(store: Store, boss: PgBoss) {
    this.#store = store;
    this.#boss = boss;
  }

  /** Nothing: the `250` waits for the commit that puts the receipt in the database. */
  holdsUnwritten(): boolean {
    return false;
  }

  accept(envelope: ReceiptEnvelope, raw: Buffer, opts: AcceptOptions = {}): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ envelope, raw, smtp: Boolean(opts.smtp), resolve, reject });
      this.#pump();
    });
  }

  #pump(): void {
    while (this.#inflight.size < DatabaseAcceptor.MAX_INFLIGHT && this.#queue.length) {
      const group = this.#queue.splice(0, DatabaseAcceptor.MAX_GROUP);
      const running: Promise<void> = this.#group(group).finally(() => {
        this.#inflight.delete(running);
        this.#pump();
      });
      this.#inflight.add(running);
    }
  }

  #commit(items: { envelope: ReceiptEnvelope; raw: Buffer }[]): Promise<void> {
    return this.#store.db.transaction().execute((trx) => acceptReceipts(trx, this.#boss, items));
  }

  async #group(group: Waiting[]): Promise<void> {
    try {
      await this.#commit(group);
      for (const g of group) {
        this.burst.accepted(g.smtp);
        g.resolve();
      }
    } catch (err) {
      if (group.length === 1) {
        group[0].reject(err as Error);
        return;
      }
      for (const g of group) await this.#commit([g]).then(g.resolve, g.reject);
    }
    this.onCommitted?.();
  }

  async close(): Promise<void> {
    this.burst.close();
    while (this.#inflight.size) await Promise.all(this.#inflight);
  }
}

interface Spooled {
  envelope: ReceiptEnvelope;
  raw: Buffer;
  /** Where the spool keeps the raw for good (spool.ts `rawRef`). */
  ref: string;
  /** Found in the spool at start-up: its rows may be in the database already. */
  recovered?: boolean;
  /** When it was accepted (performance.now()). */
  at: number;
  /** Written (or given up on): no longer counted in the backlog. */
  finished?: boolean;
}

/**
 * Messages per spool-writer transaction at most, and batches analysed ahead of the one committing.
 * 200 rather than 100: part of a batch's cost is per statement and per transaction, and at 200 the
 * database thread spent 0.40 instead of 0.49 ms per message and ingest ran about 10 % faster
 * (bench/README.md); 400 gained another 5 % but holds PGlite's one connection about 150 ms per
 * commit, which API reads would wait behind.
 */
const WRITER_BATCH = 200;
const WRITER_AHEAD = 2;
/** The writer stops yielding to a burst (burst.ts) once this many messages wait. */
const MAX_DEFER_MESSAGES = 20_000;

/**
 * Embedded (PGlite, fsync off): the `250` waits for the spool's fdatasync. Everything else happens
 * after it, off the `250` path, in one pipeline: a single writer takes the accepted records in
 * batches, has them analysed (parsed, scored, blobs written; analyzer.ts, on worker threads) while
 * the previous batch commits, and writes each batch in one PGlite transaction — receipts,
 * deliveries, threads, messages, attachments, events. A record leaves the spool once that
 * transaction committed; anything left at start-up is written again, idempotently (receipts are
 * inserted with ON CONFLICT DO NOTHING, and only fresh ones get messages).
 *
 * The spool record is this mode's durable job: there is no `inbound-ingest` job per batch, no
 * second transaction and no re-reading of what was just received. A record the pipeline cannot
 * ingest (the database refuses a value, analysis keeps failing) is written the job way instead —
 * receipt, deliveries and an `inbound-ingest` job, retried with backoff like on PostgreSQL — and
 * if even that fails it stays in the spool for the next start.
 */
export class SpoolAcceptor implements Acceptor {
  readonly #store: Store;
  readonly #boss: PgBoss;
  readonly #log: Logger;
  readonly #spool: Spool<ReceiptEnvelope>;
  readonly #analyzer: Analyzer;
  readonly #stats: AutoAnalyze;
  #backlog: Spooled[] = [];
  #backlogBytes = 0;
  /** Per inbox, deliveries of accepted records not written to the database yet. */
  #unwritten = new Map<string, number>();
  #writing: Promise<void> | null = null;
  #drained: (() => void)[] = [];
  /** Mail arriving in a burst makes the writer wait (burst.ts). */
  readonly burst = new Burst();
  /** Above this many bytes waiting for the database, new messages wait before being accepted. */
  static readonly MAX_BACKLOG_BYTES = 256 * 1024 * 1024;

  private constructor(store: Store, boss: PgBoss, log: Logger, spool: Spool<ReceiptEnvelope>, analyzer: Analyzer) {
    this.#store = store;
    this.#boss = boss;
    this.#log = log;
    this.#spool = spool;
    this.#analyzer = analyzer;
    this.#stats = new AutoAnalyze(store.db);
  }

  /** `analyzer`: where parsing runs (the server passes its thread pool); by default on this thread, without authentication verdicts. */
  static async open(store: Store, boss: PgBoss, log: Logger, dataDir: string, opts: { analyzer?: Analyzer } = {}): Promise<SpoolAcceptor> {
    const { spool, recovered } = await Spool.open<ReceiptEnvelope>(path.join(dataDir, 'spool'), (h) => h.id);
    const acceptor = new SpoolAcceptor(store, boss, log, spool, opts.analyzer ?? new InlineAnalyzer(store.blobs));
    if (recovered.length) {
      log.info({ count: recovered.length }, 'spool recovery: re-committing messages accepted before the last stop');
      for (const r of recovered) acceptor.#enqueue({ envelope: r.header, raw: r.raw, ref: r.ref!, recovered: true, at: performance.now() });
      await acceptor.flush();
    }
    return acceptor;
  }

  async accept(envelope: ReceiptEnvelope, raw: Buffer, opts: AcceptOptions = {}): Promise<void> {
    while (this.#backlogBytes > SpoolAcceptor.MAX_BACKLOG_BYTES) {
      await new Promise<void>((r) => this.#drained.push(r));
    }
    const ref = await this.#spool.append(envelope.id, envelope, raw);
    this.burst.accepted(opts.smtp);
    this.#enqueue({ envelope, raw, ref, at: performance.now() });
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
    this.burst.close();
    await this.flush().catch(() => {});
    await this.#spool.close();
  }

  holdsUnwritten(inboxId: string): boolean {
    return (this.#unwritten.get(inboxId) ?? 0) > 0;
  }

  #enqueue(item: Spooled): void {
    this.#backlog.push(item);
    this.#backlogBytes += item.raw.length;
    for (const d of item.envelope.deliveries) this.#unwritten.set(d.inbox_id, (this.#unwritten.get(d.inbox_id) ?? 0) + 1);
    this.#writing ??= this.#writeLoop();
  }

  /**
   * A batch ready to commit: without the recovered records whose rows are in the database already
   * (a crash came after their commit, before their segment was retired), so that recovery does not
   * parse again what is already there, and with the analysis of the others.
   */
  async #prepare(batch: Spooled[]): Promise<{ batch: Spooled[]; analyses: Analysis[] }> {
    const recovered = batch.filter((i) => i.recovered).map((i) => i.envelope.id);
    if (recovered.length) {
      const known = new Set((await this.#store.db.selectFrom('receipts').select('id').where('id', 'in', recovered).execute()).map((r) => r.id));
      if (known.size) {
        this.#done(batch.filter((i) => known.has(i.envelope.id)), true);
        batch = batch.filter((i) => !known.has(i.envelope.id));
      }
    }
    return { batch, analyses: await this.#analyze(batch) };
  }

  /** Waits while a burst of mail is arriving (burst.ts), unless MAX_DEFER_MESSAGES wait; recovery never waits. */
  async #yieldToBurst(): Promise<void> {
    const oldest = this.#backlog[0];
    if (!oldest || oldest.recovered) return;
    await this.burst.settle(oldest.at, () => this.#backlog.length >= MAX_DEFER_MESSAGES);
  }

  #analyze(batch: Spooled[]): Promise<Analysis[]> {
    return this.#analyzer.analyze(batch.map(({ envelope: e, raw }) => ({
      raw, trace_size: e.trace_size, mail_from: e.mail_from, helo: e.helo, remote_address: e.remote_address, hash_raw: true,
    })));
  }

  /** One transaction: the receipts not yet in the database, their deliveries and their messages. */
  async #commit(batch: Spooled[], analyses: Analysis[]): Promise<void> {
    const now = new Date();
    await this.#store.db.transaction().execute(async (trx) => {
      // One JSON parameter per statement (store/bulk.ts).
      const inserted = await bulkInsert(trx, 'receipts', batch.map(({ envelope: e, raw }, i) => ({
          id: e.id,
          mail_from: e.mail_from,
          helo: e.helo,
          remote_address: e.remote_address,
          tls: e.tls,
          raw_sha256: analyses[i].raw_sha256!,
          raw_size: raw.length,
          trace_size: e.trace_size,
          received_at: e.received_at,
          state: 'ingested' as const,
          ingested_at: now,
          raw_ref: batch[i].ref,
        })), { onConflictDoNothing: ['id'], returning: 'id' });
      const fresh = new Set(inserted);
      const items: IngestItem[] = [];
      batch.forEach(({ envelope: e, raw }, i) => {
        if (!fresh.has(e.id)) return; // written before a crash (or by the job way): nothing to do
        items.push({
          receipt: { id: e.id, mail_from: e.mail_from, raw_sha256: analyses[i].raw_sha256!, raw_size: raw.length, received_at: e.received_at },
          deliveries: e.deliveries,
          analysis: analyses[i],
        });
      });
      if (!items.length) return;
      await bulkInsert(trx, 'deliveries', items.flatMap((it) => it.deliveries.map((d) => ({ id: d.id, inbox_id: d.inbox_id, rcpt_to: d.rcpt_to, receipt_id: it.receipt.id }))));
      await writeMessages(trx, this.#boss, items);
    });
  }

  /** The job way, for a record the pipeline could not ingest: receipt, deliveries and an ingest job. */
  async #commitAsJob(item: Spooled): Promise<void> {
    const sha256 = await this.#store.blobs.put(item.raw);
    await this.#store.db.transaction().execute((trx) => recordReceipts(trx, this.#boss, [{ envelope: item.envelope, sha256, size: item.raw.length }]));
  }

  #done(items: Spooled[], release: boolean): void {
    for (const item of items) {
      if (item.finished) continue;
      item.finished = true;
      this.#backlogBytes -= item.raw.length;
      for (const d of item.envelope.deliveries) {
        const n = (this.#unwritten.get(d.inbox_id) ?? 1) - 1;
        if (n > 0) this.#unwritten.set(d.inbox_id, n);
        else this.#unwritten.delete(d.inbox_id);
      }
      if (release) this.#spool.release(item.envelope.id);
    }
    for (const wake of this.#drained.splice(0)) wake();
  }

  async #writeLoop(): Promise<void> {
    let delay = 100;
    // Batches taken from the backlog, each with its analysis already running.
    const ahead: { taken: Spooled[]; prepared: Promise<{ batch: Spooled[]; analyses: Analysis[] }> }[] = [];
    const take = () => {
      while (ahead.length < WRITER_AHEAD && this.#backlog.length) {
        const taken = this.#backlog.splice(0, WRITER_BATCH);
        const prepared = this.#prepare(taken);
        prepared.catch(() => {}); // awaited below; a rejection must not go unhandled meanwhile
        ahead.push({ taken, prepared });
      }
    };
    // Disk full, database gone: the records are safe in the spool; put them back and retry later.
    const backOff = async (err: unknown, rest: Spooled[]) => {
      this.#log.error({ err, count: rest.length }, 'could not move spooled messages into the database; retrying');
      this.#backlog.unshift(...[...rest, ...ahead.splice(0).flatMap((a) => a.taken)].filter((i) => !i.finished));
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 10_000);
    };
    try {
      for (;;) {
        await this.#yieldToBurst();
        take();
        if (!ahead.length) break;
        const { taken, prepared } = ahead.shift()!;
        take(); // the next batch is analysed while this one commits
        let batch = taken;
        try {
          const ready = await prepared;
          batch = ready.batch;
          if (batch.length) await this.#commit(batch, ready.analyses);
          this.#done(batch, true);
          delay = 100;
          await this.#stats.added(batch.length);
          continue;
        } catch (err) {
          if (isTransientStorageError(err)) {
            await backOff(err, taken);
            continue;
          }
          batch = batch.filter((i) => !i.finished);
          this.#log.warn({ err, count: batch.length }, 'a batch of spooled messages failed; writing them one by one');
        }
        // A non-transient failure: find the record that causes it, one by one, so that one bad
        // record cannot hold up every message behind it. A record that fails alone goes the job
        // way; one that fails even that was acknowledged, so it is never dropped: it stays in the
        // spool (not released) and is tried again at the next start, and an operator sees it in the log.
        for (let i = 0; i < batch.length; i++) {
          const item = batch[i];
          try {
            await this.#commit([item], await this.#analyze([item]));
            this.#done([item], true);
            continue;
          } catch (err) {
            if (isTransientStorageError(err)) {
              await backOff(err, batch.slice(i));
              break;
            }
            this.#log.warn({ err, receipt: item.envelope.id }, 'a spooled message could not be ingested directly; handing it to the ingest job');
          }
          try {
            await this.#commitAsJob(item);
            this.#done([item], true);
          } catch (err) {
            if (isTransientStorageError(err)) {
              await backOff(err, batch.slice(i));
              break;
            }
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
