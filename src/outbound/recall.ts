import type { Kysely } from 'kysely';
import { appendEvents } from '../events/events.ts';
import type { Database } from '../store/schema.ts';

/**
 * Takes back what is still waiting in the outbox (queued, or deferred by a rate limit or a 4xx) of
 * these messages: each such recipient becomes `suppressed` with the reason in its response, and a
 * `message.suppressed` event (`cancelled: true`) says so. A recipient already `sending` is past
 * recall (the network step may be under way) and is left to finish. Runs in the caller's
 * transaction, so a campaign run that ends commits its end and the recall together; the send worker
 * admits only recipients still waiting (worker.ts), so a recalled one is never sent.
 */
export async function recallMessages(trx: Kysely<Database>, messageIds: string[], reason: string, detail: string, now = new Date()): Promise<number> {
  if (!messageIds.length) return 0;
  const recalled = await trx
    .updateTable('outbound_recipients')
    .set({ status: 'suppressed', response: `cancelled: ${detail}`.slice(0, 1000), updated_at: now })
    .where('message_id', 'in', messageIds)
    .where('status', 'in', ['queued', 'deferred'])
    .returning(['message_id', 'address'])
    .execute();
  await appendCancellations(trx, recalled, { reason, detail }, now);
  return recalled.length;
}

/**
 * One `message.suppressed` event (`cancelled: true`) per recipient taken out of the outbox, with
 * its message's inbox, thread and trace: a recall here, a suppression in suppressions.ts.
 */
export async function appendCancellations(trx: Kysely<Database>, rows: { message_id: string; address: string }[], data: Record<string, unknown>, now: Date): Promise<void> {
  if (!rows.length) return;
  const meta = await trx.selectFrom('outbound').innerJoin('messages', 'messages.id', 'outbound.id')
    .select(['outbound.id', 'outbound.inbox_id', 'outbound.trace_id', 'messages.thread_id'])
    .where('outbound.id', 'in', [...new Set(rows.map((r) => r.message_id))]).execute();
  const byId = new Map(meta.map((m) => [m.id, m]));
  await appendEvents(trx, rows.map((r) => {
    const m = byId.get(r.message_id);
    return {
      type: 'message.suppressed' as const, message_id: r.message_id, inbox_id: m?.inbox_id, thread_id: m?.thread_id, trace_id: m?.trace_id,
      data: { recipient: r.address, ...data, cancelled: true },
    };
  }), now);
}
