import type { Kysely } from 'kysely';
import type { PgBoss } from 'pg-boss';
import { eventRows } from '../events/events.ts';
import { newId } from '../ids.ts';
import { decide, DEFAULT_POLICY, HELD } from '../intel/policy.ts';
import { inTransaction, QUEUES, retryOrphanedJobs } from '../jobs/boss.ts';
import type { Logger } from '../log.ts';
import { assignThreads } from '../messages/threading.ts';
import { mayBeReport } from '../outbound/verp.ts';
import { AutoAnalyze } from '../store/auto-analyze.ts';
import { bulkInsert } from '../store/bulk.ts';
import type { Store } from '../store/database.ts';
import type { Database } from '../store/schema.ts';
import type { Analysis, AuthOptions } from './analyze.ts';
import { InlineAnalyzer, type Analyzer } from './analyzer.ts';
import type { Burst } from './burst.ts';
import { INGEST_GROUP, type IngestJob } from './receipts.ts';

export type { AuthOptions } from './analyze.ts';

/**
 * Ingest: accepted receipt → parsed messages, one per recipient inbox, threaded, with attachments in
 * the blob store. It runs after the `250`, from something durable, so a crash here only delays it,
 * and every write is idempotent (message ids were fixed at accept time; a receipt already ingested
 * is skipped). Two callers: the `inbound-ingest` job (PostgreSQL, and embedded receipts the spool
 * writer could not ingest itself) through `ingestReceipts`, and the embedded spool writer, whose
 * durable record is the spool itself (accept.ts), through `writeMessages`.
 *
 * `analyzer`: where parsing and scoring run (analyzer.ts); by default on the calling thread,
 * without authentication verdicts.
 */
export async function ingestReceipts(
  store: Store, boss: PgBoss, receiptIds: string[], log: Logger, analyzer: Analyzer = new InlineAnalyzer(store.blobs),
  /** Resolves when this batch may commit (the ingest worker keeps commits in the order jobs were fetched). */
  turn: Promise<void> = Promise.resolve(),
): Promise<number> {
  try {
    return await ingestBatch(store, boss, receiptIds, analyzer, turn);
  } catch (err) {
    if (receiptIds.length <= 1) throw err;
    // One receipt that cannot be ingested (a value the database refuses, a missing blob) must not
    // hold back the rest of its batch, which the job engine would otherwise retry and fail with it.
    // One by one, the others get in; the error is rethrown so the job is retried, and the retry
    // skips the receipts ingested here.
    log.warn({ err, receipts: receiptIds.length }, 'batch ingest failed; ingesting its receipts one by one');
    let count = 0;
    let failure: unknown = null;
    for (const id of receiptIds) {
      try {
        count += await ingestBatch(store, boss, [id], analyzer, turn);
      } catch (e) {
        log.error({ err: e, receipt: id }, 'could not ingest a received message; its raw stays stored and the job is retried');
        failure ??= e;
      }
    }
    if (failure) throw failure;
    return count;
  }
}

/** One received message ready to be written: its receipt, the inboxes it goes to, what analysis found. */
export interface IngestItem {
  receipt: { id: string; mail_from: string; raw_sha256: string; raw_size: number; received_at: Date | string };
  deliveries: { id: string; inbox_id: string; rcpt_to: string }[];
  analysis: Analysis;
}

async function ingestBatch(store: Store, boss: PgBoss, receiptIds: string[], analyzer: Analyzer, turn: Promise<void>): Promise<number> {
  const { db, blobs } = store;
  const receipts = await db.selectFrom('receipts').selectAll().where('id', 'in', receiptIds).where('state', '=', 'accepted').execute();
  if (!receipts.length) return 0;
  const deliveries = await db.selectFrom('deliveries').selectAll().where('receipt_id', 'in', receipts.map((r) => r.id)).orderBy('id').execute();

  // Parse, score and store attachment bodies outside the transaction: CPU, DNS and file I/O must not
  // hold a database connection (PGlite has one). Blobs are content-addressed, so a retry rewrites nothing.
  const inputs = [];
  const many = blobs.getMany ? await blobs.getMany(receipts.map((r) => r.raw_sha256)) : null;
  for (const r of receipts) {
    const raw = many ? many.get(r.raw_sha256) ?? null : await blobs.get(r.raw_sha256);
    // Logged by ingestReceipts, which isolates the receipt and lets the job be retried.
    if (!raw) throw new Error(`raw message ${r.raw_sha256} of receipt ${r.id} is missing from the blob store`);
    inputs.push({ raw, trace_size: r.trace_size, mail_from: r.mail_from, helo: r.helo, remote_address: r.remote_address });
  }
  const analyses = await analyzer.analyze(inputs);

  await turn;
  return db.transaction().execute(async (trx) => {
    const existing = new Set(
      deliveries.length ? (await trx.selectFrom('messages').select('id').where('id', 'in', deliveries.map((d) => d.id)).execute()).map((m) => m.id) : [],
    );
    const items = receipts.map((r, i) => ({
      receipt: r,
      deliveries: deliveries.filter((d) => d.receipt_id === r.id && !existing.has(d.id)),
      analysis: analyses[i],
    }));
    const n = await writeMessages(trx, boss, items);
    await trx.updateTable('receipts').set({ state: 'ingested', ingested_at: new Date() }).where('id', 'in', receipts.map((r) => r.id)).execute();
    return n;
  });
}

/** The jsonb columns of a message row, which analysis hands over already serialised (analyze.ts). */
const MESSAGE_JSON_COLUMNS = ['to', 'cc', 'reply_to', 'references', 'headers', 'parse_warnings', 'security', 'kind_evidence', 'a2a'] as const;

/**
 * Writes the messages of analysed receipts, in the caller's transaction: one row per delivery
 * (threaded, with its inbox's disposition), the attachments, a message.received or
 * message.quarantined event each, and report jobs for mail that may be a bounce of ours. Every
 * statement covers the whole batch. Returns the number of messages written.
 */
export async function writeMessages(trx: Kysely<Database>, boss: PgBoss, items: IngestItem[]): Promise<number> {
  const todo = items.flatMap((item) => item.deliveries.map((d) => ({ d, item })));
  if (!todo.length) return 0;
  // Each inbox's policy decides what its copy gets (intel/policy.ts).
  const policies = new Map(
    (await trx.selectFrom('inboxes').select(['id', 'injection_action', 'injection_threshold']).where('id', 'in', [...new Set(todo.map((t) => t.d.inbox_id))]).execute())
      .map((i) => [i.id, { action: i.injection_action, threshold: Number(i.injection_threshold) }] as const),
  );
  const dispositions = todo.map(({ d, item }) => decide(item.analysis.injection, policies.get(d.inbox_id) ?? DEFAULT_POLICY));
  const threads = await assignThreads(trx, todo.map(({ d, item }) => {
    const p = item.analysis.message;
    return {
      key: d.id,
      inboxId: d.inbox_id,
      subject: p.subject,
      at: new Date(item.receipt.received_at),
      ownId: p.message_id,
      parents: [...new Set([...(p.in_reply_to ? [p.in_reply_to] : []), ...p.references])],
    };
  }));
  const rows = todo.map(({ d, item }, i) => {
    const { receipt: r, analysis: a } = item;
    const p = a.message;
    return {
      id: d.id,
      inbox_id: d.inbox_id,
      thread_id: threads.get(d.id)!,
      receipt_id: r.id,
      direction: 'inbound' as const,
      from_address: p.from?.address ?? null,
      from_name: p.from?.name || null,
      to: a.json.to,
      cc: a.json.cc,
      reply_to: a.json.reply_to,
      subject: p.subject,
      date: p.date,
      message_id: p.message_id,
      in_reply_to: p.in_reply_to,
      references: a.json.references,
      text: p.text,
      html: p.html,
      headers: a.json.headers,
      size: r.raw_size,
      raw_sha256: r.raw_sha256,
      received_at: r.received_at,
      parse_warnings: a.json.parse_warnings,
      security: a.json.security,
      kind: a.kind,
      return_date: a.return_date,
      kind_evidence: a.json.kind_evidence,
      disposition: dispositions[i],
      extracted_text: a.extracted_text,
      a2a: a.json.a2a,
    };
  });
  // One JSON parameter per statement rather than 30 bind parameters per row (store/bulk.ts).
  await bulkInsert(trx, 'messages', rows, { json: MESSAGE_JSON_COLUMNS });
  const attachmentRows = todo.flatMap(({ d, item }) => item.analysis.attachments.map((att, i) => ({
    id: newId('att'),
    message_id: d.id,
    position: i,
    filename: att.filename,
    content_type: att.content_type,
    disposition: att.disposition,
    content_id: att.content_id,
    size: att.size,
    sha256: att.sha256!,
  })));
  await bulkInsert(trx, 'attachments', attachmentRows);
  // Every decision is an event: message.received (delivered or flagged) or message.quarantined.
  // The rows appendEvents would write (events.ts eventRows), inserted with one parameter.
  await bulkInsert(trx, 'events', eventRows(todo.map(({ d, item }, i) => {
    const disposition = dispositions[i];
    const a = item.analysis;
    return {
      type: (HELD.includes(disposition) ? 'message.quarantined' : 'message.received') as 'message.quarantined' | 'message.received',
      inbox_id: d.inbox_id, message_id: d.id, thread_id: threads.get(d.id)!,
      // Enough for a consumer to decide whether to fetch the message: who, what, how risky. Not
      // the subject of held mail: it is attacker-written text, and held mail reaches no
      // consumer (webhook, stream, workflow) until somebody released it.
      data: {
        from: a.message.from?.address ?? null,
        subject: HELD.includes(disposition) ? null : a.message.subject ?? null,
        disposition, injection: { score: a.injection.score, level: a.injection.level }, kind: a.kind,
        // An agent serving a2a requests finds them in the stream without fetching every message.
        ...(a.a2a && !HELD.includes(disposition) ? { a2a: a.a2a } : {}),
      },
    };
  }), new Date()), { json: ['data'] });
  // Mail that may be a report on something we sent (a DSN to a VERP address, anything with the
  // null sender) is handed to the outbound side in the same commit, so no bounce is ever missed.
  const reports = todo.filter(({ d, item }) => mayBeReport(item.receipt.mail_from, d.rcpt_to)).map(({ d }) => d.id);
  if (reports.length) await boss.insert(QUEUES.report, [{ data: { message_ids: reports } }], { db: inTransaction(trx) });
  return todo.length;
}

/**
 * Starts this process's ingest workers. Several processes on one PostgreSQL share the queue.
 * `acceptor`: this process's PostgreSQL acceptor, if any: a commit wakes a worker at once (instead
 * of after its polling interval), and a burst of incoming mail defers ingest (burst.ts).
 */
export async function startIngestWorker(
  store: Store, boss: PgBoss, log: Logger, analyzer: Analyzer = new InlineAnalyzer(store.blobs),
  acceptor?: { burst: Burst; onCommitted: (() => void) | null },
): Promise<void> {
  if (store.engine === 'pglite') await retryOrphanedJobs(store, boss, log, QUEUES.ingest);
  const stats = new AutoAnalyze(store.db);
  // Two workers, so that one batch is analysed on the analyzer's threads while the other commits;
  // commits still happen in the order the batches were fetched, so a process writes its messages
  // (and their message.received events) in the order it accepted them.
  let lastTurn = Promise.resolve();
  const id = await boss.work<IngestJob>(
    QUEUES.ingest,
    // burstWhenBatchFull: a full batch means more are waiting, so fetch again at once instead of
    // sleeping out the polling interval (which capped parsing at batchSize / 0.5 s; see bench/README.md).
    { batchSize: 10, localConcurrency: 2, pollingIntervalSeconds: 0.5, burstWhenBatchFull: true },
    async (jobs) => {
      const turn = lastTurn;
      let done!: () => void;
      lastTurn = new Promise<void>((r) => { done = r; });
      try {
        await acceptor?.burst.settle();
        // Jobs hold up to INGEST_GROUP receipts each; a transaction takes one group at most.
        const ids = jobs.flatMap((j) => j.data.receipt_ids ?? []);
        let n = 0;
        for (let i = 0; i < ids.length; i += INGEST_GROUP) n += await ingestReceipts(store, boss, ids.slice(i, i + INGEST_GROUP), log, analyzer, turn);
        log.debug({ jobs: jobs.length, receipts: ids.length, messages: n }, 'ingested');
        await stats.added(n);
      } finally {
        await turn.catch(() => {});
        done();
      }
    },
  );
  if (acceptor) acceptor.onCommitted = () => boss.notifyWorker(id);
}
