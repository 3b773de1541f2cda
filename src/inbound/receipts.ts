import { sql, type Kysely } from 'kysely';
import { sha256Hex } from '../store/blobs.ts';
import { PREPARE_MARK } from '../store/prepared.ts';
import type { PgBoss } from 'pg-boss';
import { inTransactionPrepared, QUEUES } from '../jobs/boss.ts';
import type { Database } from '../store/schema.ts';

/**
 * A receipt is one accepted SMTP transaction: who sent it, to which inboxes, and the sha256 of the
 * raw bytes (trace headers included) in the blob store. All SQL about receipts lives here.
 */
export interface ReceiptEnvelope {
  id: string;
  mail_from: string;
  helo: string | null;
  remote_address: string | null;
  tls: boolean;
  received_at: string;
  /** Bytes of trace headers Mailroom prepended; the sender's bytes start after them. */
  trace_size: number;
  deliveries: { id: string; inbox_id: string; rcpt_to: string }[];
}

const INGEST_HEARTBEAT_SECONDS = 10;
/** Receipts per ingest job at most. */
export const INGEST_GROUP = 100;

/** Data of an ingest job. */
export interface IngestJob {
  receipt_ids: string[];
}

/**
 * Writes receipts, their deliveries and their ingest jobs, in the caller's transaction, so the job
 * exists exactly when the receipt does. Idempotent on receipt id. The embedded spool writer uses
 * it for a record it could not ingest directly (accept.ts); tests use it to make such receipts.
 */
export async function recordReceipts(
  trx: Kysely<Database>,
  boss: PgBoss,
  receipts: { envelope: ReceiptEnvelope; sha256: string; size: number }[],
): Promise<void> {
  if (!receipts.length) return;
  const inserted = await trx
    .insertInto('receipts')
    .values(receipts.map(({ envelope: e, sha256, size }) => ({
      id: e.id,
      mail_from: e.mail_from,
      helo: e.helo,
      remote_address: e.remote_address,
      tls: e.tls,
      raw_sha256: sha256,
      raw_size: size,
      trace_size: e.trace_size,
      received_at: e.received_at,
      state: 'accepted' as const,
    })))
    .onConflict((oc) => oc.column('id').doNothing())
    .returning('id')
    .execute();
  const fresh = new Set(inserted.map((r) => r.id));
  const rows = receipts.filter((r) => fresh.has(r.envelope.id));
  if (!rows.length) return;
  await trx.insertInto('deliveries').values(rows.flatMap((r) => r.envelope.deliveries.map((d) => ({ ...d, receipt_id: r.envelope.id })))).execute();
  // With a heartbeat, a job whose worker process died (kill -9) is failed and retried by pg-boss's
  // supervisor about a minute later, instead of staying claimed for the queue's expireInSeconds
  // (300 s) while its acknowledged message stays unparsed (test/crash.test.ts, D3). The worker
  // refreshes it every heartbeatSeconds / 2 while the job runs; 10 s is pg-boss's minimum.
  // One job per group of receipts committed together: a job per receipt made pg-boss's own
  // insert/fetch/complete the largest share of ingest cost (bench/README.md). A group is parsed as
  // one batch by the worker.
  await insertIngestJobs(trx, boss, rows.map((r) => r.envelope.id));
}

/** One ingest job per INGEST_GROUP receipts, inserted in the caller's transaction. */
async function insertIngestJobs(trx: Kysely<Database>, boss: PgBoss, receiptIds: string[]): Promise<void> {
  const jobs = [];
  for (let i = 0; i < receiptIds.length; i += INGEST_GROUP) {
    jobs.push({ data: { receipt_ids: receiptIds.slice(i, i + INGEST_GROUP) }, heartbeatSeconds: INGEST_HEARTBEAT_SECONDS });
  }
  if (jobs.length) await boss.insert(QUEUES.ingest, jobs, { db: inTransactionPrepared(trx) });
}

/**
 * PostgreSQL's accept: `recordReceipts` for messages whose raws go into the `blobs` table, in two
 * statements whatever the group's size — one for the blobs, receipts and deliveries (a statement
 * with data-modifying CTEs over arrays, so the foreign keys are checked once it has inserted all
 * three), one for the ingest jobs — instead of one statement per raw plus three. Every `250` on
 * PostgreSQL waits for this transaction, so its round trips are what the sender waits for.
 */
export async function acceptReceipts(trx: Kysely<Database>, boss: PgBoss, items: { envelope: ReceiptEnvelope; raw: Buffer }[]): Promise<void> {
  if (!items.length) return;
  const shas = items.map((i) => sha256Hex(i.raw));
  const e = items.map((i) => i.envelope);
  const d = e.flatMap((r) => r.deliveries.map((x) => ({ ...x, receipt_id: r.id })));
  // A named prepared statement (store/prepared.ts): its text is the same for every group.
  const { rows } = await sql<{ id: string }>`${sql.raw(PREPARE_MARK)}
    WITH b AS (
      INSERT INTO blobs (sha256, size, data)
      SELECT * FROM unnest(${shas}::text[], ${items.map((i) => i.raw.length)}::int[], ${items.map((i) => i.raw)}::bytea[])
      ON CONFLICT (sha256) DO NOTHING
    ), r AS (
      INSERT INTO receipts (id, mail_from, helo, remote_address, tls, raw_sha256, raw_size, trace_size, received_at, state)
      SELECT x.*, 'accepted' FROM unnest(
        ${e.map((r) => r.id)}::text[], ${e.map((r) => r.mail_from)}::text[], ${e.map((r) => r.helo)}::text[],
        ${e.map((r) => r.remote_address)}::text[], ${e.map((r) => r.tls)}::bool[], ${shas}::text[],
        ${items.map((i) => i.raw.length)}::int[], ${e.map((r) => r.trace_size)}::int[], ${e.map((r) => r.received_at)}::timestamptz[]
      ) AS x(id, mail_from, helo, remote_address, tls, raw_sha256, raw_size, trace_size, received_at)
      ON CONFLICT (id) DO NOTHING
      RETURNING id
    ), d AS (
      INSERT INTO deliveries (id, inbox_id, rcpt_to, receipt_id)
      SELECT y.* FROM unnest(${d.map((x) => x.id)}::text[], ${d.map((x) => x.inbox_id)}::text[], ${d.map((x) => x.rcpt_to)}::text[], ${d.map((x) => x.receipt_id)}::text[])
        AS y(id, inbox_id, rcpt_to, receipt_id)
      WHERE y.receipt_id IN (SELECT id FROM r)
    )
    SELECT id FROM r`.execute(trx);
  // Receipts already there (a retried group) keep the job they had.
  const fresh = new Set(rows.map((r) => r.id));
  await insertIngestJobs(trx, boss, e.filter((r) => fresh.has(r.id)).map((r) => r.id));
}

/**
 * Whether mail to `inboxId` was accepted (answered `250`) but is not parsed yet: a reply may be in
 * it that nobody can read. The campaign engine asks before it sends a follow-up, so that a reply
 * acknowledged just before a crash — parsed only once the dead worker's ingest job is retried, up
 * to a minute after the restart — still stops the next step.
 *
 * Receipts older than UNREAD_HORIZON are left out: the ingest's retries give up after about 40
 * minutes (jobs/boss.ts, retryLimit 10 with backoff to 600 s), and a receipt it gave up on (kept
 * for an operator) must not hold that inbox's follow-ups forever. The partial index
 * `receipts_pending` makes this a look at the few pending receipts.
 */
export async function hasUnreadReceipt(db: Kysely<Database>, inboxId: string): Promise<boolean> {
  const row = await db.selectFrom('receipts as r')
    .innerJoin('deliveries as d', 'd.receipt_id', 'r.id')
    .select('r.id')
    .where('r.state', '=', 'accepted')
    .where('r.received_at', '>', new Date(Date.now() - UNREAD_HORIZON_MS))
    .where('d.inbox_id', '=', inboxId)
    .limit(1)
    .executeTakeFirst();
  return !!row;
}
const UNREAD_HORIZON_MS = 60 * 60_000;
