import type { PgBoss } from 'pg-boss';
import { appendEvents, type NewEvent } from '../events/events.ts';
import { QUEUES } from '../jobs/boss.ts';
import type { Logger } from '../log.ts';
import type { Store } from '../store/database.ts';
import { addressKey } from './addresses.ts';
import { classifyBounce, type BounceVerdict } from './bounces/classify.ts';
import { addSuppression } from './suppressions.ts';
import { checkBounceRate } from './throttle.ts';
import type { Config } from '../config/config.ts';
import { parseVerp } from './verp.ts';
import { parseUnsubscribeAddress, type Unsubscribe } from './unsubscribe.ts';

/**
 * Asynchronous reports about mail we sent: a DSN that arrives hours later, an ARF complaint from a
 * mailbox provider. Each received message that may be one (see verp.ts `mayBeReport`) is classified
 * and matched to its send — by the VERP return path it was addressed to, else by the original
 * Message-ID quoted in the report — and applied in one transaction: the recipient's state, the
 * event, the suppression, and the cancellation of anything still queued to the address.
 * Applying a report twice changes nothing the second time (a retried job is harmless).
 */
export interface ReportJob { message_ids: string[] }

export interface ReportDeps { store: Store; log: Logger; unsubscribe: Unsubscribe; bounceRate: Config['outbound']['bounceRate'] }

export async function applyReport(deps: ReportDeps, inboundId: string): Promise<BounceVerdict['kind'] | 'unmatched' | 'unsubscribe' | null> {
  const { store, log, bounceRate } = deps;
  const { db, blobs } = store;
  const msg = await db.selectFrom('messages').innerJoin('deliveries', 'deliveries.id', 'messages.id').innerJoin('receipts', 'receipts.id', 'deliveries.receipt_id')
    .select(['messages.id', 'messages.inbox_id', 'deliveries.rcpt_to', 'receipts.raw_sha256', 'receipts.trace_size'])
    .where('messages.id', '=', inboundId).executeTakeFirst();
  if (!msg) return null;
  // A mail to unsubscribe+<token>@ is a mailto: unsubscribe (RFC 2369); its content does not matter.
  const unsubscribe = parseUnsubscribeAddress(msg.rcpt_to);
  if (unsubscribe) {
    if (!(await deps.unsubscribe.apply(unsubscribe.token, 'mailto'))) log.info({ message: inboundId }, 'a mailto: unsubscribe carried an invalid token');
    return 'unsubscribe';
  }
  const raw = await blobs.get(msg.raw_sha256);
  if (!raw) throw new Error(`raw message ${msg.raw_sha256} of ${inboundId} is missing from the blob store`);
  const verdict = await classifyBounce(raw.subarray(msg.trace_size));
  if (verdict.kind !== 'bounce' && verdict.kind !== 'complaint') return verdict.kind;

  // Which send is it about? The VERP address is exact; the quoted Message-ID is the fallback for
  // reports sent to the From address, and must belong to a send of the same inbox.
  let outboundId = parseVerp(msg.rcpt_to)?.messageId ?? null;
  if (!outboundId && verdict.original.message_id) {
    const quoted = verdict.original.message_id.trim();
    const row = await db.selectFrom('messages').select('id').where('inbox_id', '=', msg.inbox_id).where('direction', '=', 'outbound')
      .where('message_id', 'in', [quoted, `<${quoted.replace(/^<|>$/g, '')}>`]).executeTakeFirst();
    outboundId = row?.id ?? null;
  }
  const o = outboundId
    ? await db.selectFrom('outbound').innerJoin('messages', 'messages.id', 'outbound.id').innerJoin('inboxes', 'inboxes.id', 'outbound.inbox_id')
      .select(['outbound.id', 'outbound.inbox_id', 'outbound.trace_id', 'messages.thread_id', 'inboxes.domain'])
      .where('outbound.id', '=', outboundId).where('outbound.inbox_id', '=', msg.inbox_id).executeTakeFirst()
    : undefined;
  if (!o) {
    log.info({ message: inboundId, kind: verdict.kind }, 'a report could not be matched to a message we sent');
    return 'unmatched';
  }
  const rcpts = await db.selectFrom('outbound_recipients').selectAll().where('message_id', '=', o.id).execute();
  // A report that names no recipient (some non-standard bounces) is about the only one, if there is one.
  const named = verdict.recipients.filter((r) => r.address);
  const targets = named.length
    ? named.map((v) => ({ v, r: rcpts.find((r) => addressKey(r.address) === addressKey(v.address!)) })).filter((t) => t.r)
    : rcpts.length === 1 ? [{ v: verdict.recipients[0] ?? null, r: rcpts[0] }] : [];
  const base = { inbox_id: o.inbox_id, message_id: o.id, thread_id: o.thread_id, trace_id: o.trace_id };
  const now = new Date();

  await db.transaction().execute(async (trx) => {
    const events: NewEvent[] = [];
    const suppress: { address: string; reason: 'hard_bounce' | 'complaint'; detail: string }[] = [];
    for (const { v, r } of targets) {
      if (verdict.kind === 'complaint') {
        events.push({ type: 'message.complained', ...base, data: { recipient: r!.address, feedback_type: verdict.feedback_type, report_message_id: inboundId } });
        suppress.push({ address: r!.address, reason: 'complaint', detail: `complaint (${verdict.feedback_type ?? 'abuse'})` });
        continue;
      }
      if (r!.status === 'bounced') continue; // already applied
      // A mixed report lists recipients still being retried too (status 4.x.x): not a bounce yet.
      if (v?.status?.startsWith('4')) continue;
      const hard = v?.hard ?? true;
      const reason = v?.reason ?? 'undefined';
      const response = (v?.diagnostic ?? v?.status ?? 'asynchronous bounce').slice(0, 500);
      await trx.updateTable('outbound_recipients')
        .set({ status: 'bounced', bounce_type: hard ? 'hard' : 'soft', bounce_reason: reason, response, updated_at: now })
        .where('id', '=', r!.id).execute();
      events.push({ type: 'message.bounced', ...base, data: { recipient: r!.address, type: hard ? 'hard' : 'soft', reason, status: v?.status ?? null, response, synchronous: false, report_message_id: inboundId } });
      if (hard) suppress.push({ address: r!.address, reason: 'hard_bounce', detail: response });
    }
    const ids = await appendEvents(trx, events, now);
    for (const s of suppress) {
      const i = events.findIndex((e) => e.data?.recipient === s.address);
      await addSuppression(trx, { address: s.address, scope: 'global', reason: s.reason, detail: s.detail, sourceEventId: ids[i] ?? null }, now);
    }
    if (events.some((e) => e.type === 'message.bounced')) await checkBounceRate(trx, o.domain, bounceRate, now);
  });
  return verdict.kind;
}

export async function startReportWorker(deps: ReportDeps, boss: PgBoss): Promise<void> {
  await boss.work<ReportJob>(QUEUES.report, { batchSize: 4, pollingIntervalSeconds: 1 }, async (jobs) => {
    for (const job of jobs) for (const id of job.data.message_ids ?? []) await applyReport(deps, id);
  });
}

/** The inbox that sent an outbound message (for its VERP return path), or null when it is gone. */
export async function inboxForVerp(store: Store, messageId: string): Promise<string | null> {
  const row = await store.db.selectFrom('outbound').innerJoin('inboxes', 'inboxes.id', 'outbound.inbox_id').select('inboxes.id')
    .where('outbound.id', '=', messageId).where('inboxes.deleted_at', 'is', null).executeTakeFirst();
  return row?.id ?? null;
}
