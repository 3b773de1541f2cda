import type { PgBoss } from 'pg-boss';
import { newId } from '../ids.ts';
import { inTransaction, QUEUES, retryOrphanedJobs } from '../jobs/boss.ts';
import { mayBeReport } from '../outbound/verp.ts';
import { authVerdict, type AuthVerdict } from '../intel/auth.ts';
import { messageKind, type MessageKind } from '../intel/kind.ts';
import { scoreInjection } from '../intel/injection.ts';
import { extractReply } from '../intel/reply/index.ts';
import { decide, DEFAULT_POLICY, HELD } from '../intel/policy.ts';
import { appendEvents } from '../events/events.ts';
import { INGEST_GROUP, type IngestJob } from './receipts.ts';
import type { Logger } from '../log.ts';
import { assignThreads } from '../messages/threading.ts';
import { traceHeaderFields } from './trace.ts';
import { parseMessage, type ParsedMessage } from '../mime/parse.ts';
import type { Store } from '../store/database.ts';

/**
 * The ingest job: accepted receipt → parsed messages, one per recipient inbox, threaded, with
 * attachments in the blob store. It runs after the `250`, from the durable queue, so a crash here
 * only delays it: the job is retried and every write is idempotent (message ids were fixed at
 * accept time; a receipt already ingested is skipped).
 */
export async function ingestReceipts(store: Store, boss: PgBoss, receiptIds: string[], log: Logger, auth?: AuthOptions): Promise<number> {
  try {
    return await ingestBatch(store, boss, receiptIds, log, auth);
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
        count += await ingestBatch(store, boss, [id], log, auth);
      } catch (e) {
        log.error({ err: e, receipt: id }, 'could not ingest a received message; its raw stays stored and the job is retried');
        failure ??= e;
      }
    }
    if (failure) throw failure;
    return count;
  }
}

async function ingestBatch(store: Store, boss: PgBoss, receiptIds: string[], log: Logger, auth?: AuthOptions): Promise<number> {
  const { db, blobs } = store;
  const receipts = await db.selectFrom('receipts').selectAll().where('id', 'in', receiptIds).where('state', '=', 'accepted').execute();
  if (!receipts.length) return 0;
  const deliveries = await db.selectFrom('deliveries').selectAll().where('receipt_id', 'in', receipts.map((r) => r.id)).orderBy('id').execute();

  // Parse and store attachment bodies outside the transaction: CPU and file I/O must not hold
  // PGlite's single connection. Blobs are content-addressed, so a retry rewrites nothing.
  const parsed = new Map<string, { p: ParsedMessage; attachmentShas: string[]; attachmentSizes: number[] }>();
  const kinds = new Map<string, MessageKind>();
  // Authentication waits on DNS: started per receipt while the raw is at hand, awaited together.
  const verdictsPending: Promise<[string, AuthVerdict]>[] = [];
  for (const r of receipts) {
    const raw = await blobs.get(r.raw_sha256);
    // Logged by ingestReceipts, which isolates the receipt and lets the job be retried.
    if (!raw) throw new Error(`raw message ${r.raw_sha256} of receipt ${r.id} is missing from the blob store`);
    // The sender's bytes are parsed on their own and Mailroom's trace headers are added from its own
    // bytes: a message whose first line starts with a space or tab would otherwise read as a folded
    // continuation of our Received header, letting a sender append text to a header we vouch for.
    const p = await parseMessage(raw.subarray(r.trace_size));
    p.headers = [...traceHeaderFields(raw.subarray(0, r.trace_size)), ...p.headers];
    const attachmentShas: string[] = [];
    const attachmentSizes: number[] = [];
    for (const a of p.attachments) {
      attachmentShas.push(await blobs.put(a.content));
      attachmentSizes.push(a.content.length);
      // Stored: drop the bytes now, so a batch of large messages does not hold every attachment in memory.
      a.content = Buffer.alloc(0);
    }
    parsed.set(r.id, { p, attachmentShas, attachmentSizes });
    const sender = raw.subarray(r.trace_size);
    kinds.set(r.id, await messageKind(p, sender, r.mail_from));
    if (auth) {
      verdictsPending.push(authVerdict(sender, { ip: r.remote_address, helo: r.helo, mailFrom: r.mail_from }, p, auth).then((v) => [r.id, v]));
    }
  }
  // Authentication verdicts, from the sender's bytes and envelope (authVerdict never throws).
  const verdicts = new Map<string, AuthVerdict>(await Promise.all(verdictsPending));

  // The reply without its quoted history, once per receipt (a pure, linear-time function).
  const replies = new Map(receipts.map((r) => {
    const { p } = parsed.get(r.id)!;
    try {
      const x = extractReply(p.text, p.html);
      return [r.id, x.method === 'none' ? null : x.text] as const;
    } catch {
      return [r.id, null] as const; // never lose a message to the extractor: the full text stays
    }
  }));
  // Injection risk, once per receipt and outside the transaction (CPU work must not hold the connection).
  const injections = new Map(receipts.map((r) => {
    const { p } = parsed.get(r.id)!;
    return [r.id, scoreInjection({ subject: p.subject, text: p.text, html: p.html, fromName: p.from?.name, attachments: p.attachments, auth: verdicts.get(r.id) ?? null })];
  }));

  return db.transaction().execute(async (trx) => {
    const existing = new Set(
      deliveries.length ? (await trx.selectFrom('messages').select('id').where('id', 'in', deliveries.map((d) => d.id)).execute()).map((m) => m.id) : [],
    );
    const todo = deliveries.filter((d) => !existing.has(d.id));
    const receiptById = new Map(receipts.map((r) => [r.id, r]));
    // Each inbox's policy decides what its copy gets (intel/policy.ts).
    const policies = new Map(todo.length
      ? (await trx.selectFrom('inboxes').select(['id', 'injection_action', 'injection_threshold']).where('id', 'in', [...new Set(todo.map((d) => d.inbox_id))]).execute())
        .map((i) => [i.id, { action: i.injection_action, threshold: Number(i.injection_threshold) }] as const)
      : []);
    const dispositionOf = (d: { inbox_id: string; receipt_id: string }) => decide(injections.get(d.receipt_id)!, policies.get(d.inbox_id) ?? DEFAULT_POLICY);
    const threads = await assignThreads(trx, todo.map((d) => {
      const { p } = parsed.get(d.receipt_id)!;
      return {
        key: d.id,
        inboxId: d.inbox_id,
        subject: p.subject,
        at: receiptById.get(d.receipt_id)!.received_at,
        ownId: p.message_id,
        parents: [...new Set([...(p.in_reply_to ? [p.in_reply_to] : []), ...p.references])],
      };
    }));
    // Chunked inserts: PostgreSQL takes at most 65,535 bind parameters per statement, and a group of
    // receipts with many recipients each can exceed that (22 columns per message row).
    for (let i = 0; i < todo.length; i += 1000) {
      await trx
        .insertInto('messages')
        .values(todo.slice(i, i + 1000).map((d) => {
          const r = receiptById.get(d.receipt_id)!;
          const { p } = parsed.get(d.receipt_id)!;
          return {
            id: d.id,
            inbox_id: d.inbox_id,
            thread_id: threads.get(d.id)!,
            receipt_id: r.id,
            direction: 'inbound' as const,
            from_address: p.from?.address ?? null,
            from_name: p.from?.name || null,
            to: JSON.stringify(p.to),
            cc: JSON.stringify(p.cc),
            reply_to: JSON.stringify(p.reply_to),
            subject: p.subject,
            date: p.date,
            message_id: p.message_id,
            in_reply_to: p.in_reply_to,
            references: JSON.stringify(p.references),
            text: p.text,
            html: p.html,
            headers: JSON.stringify(p.headers),
            size: r.raw_size,
            raw_sha256: r.raw_sha256,
            received_at: r.received_at,
            parse_warnings: JSON.stringify(p.warnings),
            security: JSON.stringify({
              ...(verdicts.has(r.id) ? { auth: verdicts.get(r.id) } : {}),
              injection: injections.get(r.id),
            }),
            kind: kinds.get(r.id)?.kind ?? null,
            return_date: kinds.get(r.id)?.return_date ?? null,
            kind_evidence: kinds.has(r.id) ? JSON.stringify(kinds.get(r.id)!.evidence) : null,
            disposition: dispositionOf(d),
            extracted_text: replies.get(r.id) ?? null,
          };
        }))
        .execute();
    }
    if (todo.length) {
      const attachmentRows = todo.flatMap((d) => {
        const { p, attachmentShas, attachmentSizes } = parsed.get(d.receipt_id)!;
        return p.attachments.map((a, i) => ({
          id: newId('att'),
          message_id: d.id,
          position: i,
          filename: a.filename,
          content_type: a.content_type,
          disposition: a.disposition,
          content_id: a.content_id,
          size: attachmentSizes[i],
          sha256: attachmentShas[i],
        }));
      });
      // Chunked: a message may carry up to maxAttachments parts, and bind parameters are finite.
      for (let i = 0; i < attachmentRows.length; i += 500) {
        await trx.insertInto('attachments').values(attachmentRows.slice(i, i + 500)).execute();
      }
    }
    // Every decision is an event: message.received (delivered or flagged) or message.quarantined.
    if (todo.length) {
      await appendEvents(trx, todo.map((d) => {
        const disposition = dispositionOf(d);
        const inj = injections.get(d.receipt_id)!;
        const { p } = parsed.get(d.receipt_id)!;
        return {
          type: (HELD.includes(disposition) ? 'message.quarantined' : 'message.received') as 'message.quarantined' | 'message.received',
          inbox_id: d.inbox_id, message_id: d.id, thread_id: threads.get(d.id)!,
          // Enough for a consumer to decide whether to fetch the message: who, what, how risky. Not
          // the subject of held mail: it is attacker-written text, and held mail reaches no
          // consumer (webhook, stream, workflow) until somebody released it.
          data: {
            from: p.from?.address ?? null,
            subject: HELD.includes(disposition) ? null : p.subject ?? null,
            disposition, injection: { score: inj.score, level: inj.level }, kind: kinds.get(d.receipt_id)?.kind ?? null,
          },
        };
      }));
    }
    // Mail that may be a report on something we sent (a DSN to a VERP address, anything with the
    // null sender) is handed to the outbound side in the same commit, so no bounce is ever missed.
    const reports = todo.filter((d) => mayBeReport(receiptById.get(d.receipt_id)!.mail_from, d.rcpt_to)).map((d) => d.id);
    if (reports.length) await boss.insert(QUEUES.report, [{ data: { message_ids: reports } }], { db: inTransaction(trx) });
    await trx.updateTable('receipts').set({ state: 'ingested', ingested_at: new Date() }).where('id', 'in', receipts.map((r) => r.id)).execute();
    return todo.length;
  });
}

/** Starts this process's ingest workers. Several processes on one PostgreSQL share the queue. */
/** How ingest computes `security.auth`: the resolver (cached) and the authserv-id (our host name). */
export interface AuthOptions { authservId: string; resolve: (name: string, rrtype: string) => Promise<unknown>; trustedDomains?: readonly string[] }

export async function startIngestWorker(store: Store, boss: PgBoss, log: Logger, auth?: AuthOptions): Promise<void> {
  if (store.engine === 'pglite') await retryOrphanedJobs(store, boss, log, QUEUES.ingest);
  await boss.work<IngestJob>(
    QUEUES.ingest,
    // burstWhenBatchFull: a full batch means more are waiting, so fetch again at once instead of
    // sleeping out the polling interval (which capped parsing at batchSize / 0.5 s; see bench/README.md).
    { batchSize: 4, pollingIntervalSeconds: 0.5, burstWhenBatchFull: true },
    async (jobs) => {
      // Jobs hold up to INGEST_GROUP receipts each; a transaction takes one group at most.
      const ids = jobs.flatMap((j) => j.data.receipt_ids ?? []);
      let n = 0;
      for (let i = 0; i < ids.length; i += INGEST_GROUP) n += await ingestReceipts(store, boss, ids.slice(i, i + INGEST_GROUP), log, auth);
      log.debug({ jobs: jobs.length, receipts: ids.length, messages: n }, 'ingested');
    },
  );
}
