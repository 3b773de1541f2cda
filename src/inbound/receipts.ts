import type { Kysely } from 'kysely';
import type { PgBoss } from 'pg-boss';
import { inTransaction, QUEUES } from '../jobs/boss.ts';
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
 * Writes receipts, their deliveries and one ingest job each, in the caller's transaction, so the
 * job exists exactly when the receipt does. Idempotent on receipt id (spool recovery replays).
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
  // One job per group of receipts committed together: the embedded writer commits up to 200 at a
  // time, and a job per receipt made pg-boss's own insert/fetch/complete the largest share of
  // ingest cost on PGlite (bench/README.md). A group is parsed as one batch by the worker.
  const jobs = [];
  for (let i = 0; i < rows.length; i += INGEST_GROUP) {
    jobs.push({ data: { receipt_ids: rows.slice(i, i + INGEST_GROUP).map((r) => r.envelope.id) }, heartbeatSeconds: INGEST_HEARTBEAT_SECONDS });
  }
  await boss.insert(QUEUES.ingest, jobs, { db: inTransaction(trx) });
}
