import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import type { PgBoss } from 'pg-boss';
import { inTransaction, QUEUES } from '../jobs/boss.ts';
import type { Database } from '../store/schema.ts';

/**
 * Queues the message's next run (or none, when every recipient is final) and makes it the live
 * job. Called in the transaction that commits the state it is derived from.
 */
export async function scheduleNextRun(trx: Kysely<Database>, boss: PgBoss, messageId: string, now: Date): Promise<Date | null> {
  const { next } = await trx.selectFrom('outbound_recipients')
    .select(sql<Date | null>`min(coalesce(next_attempt_at, ${now}))`.as('next'))
    .where('message_id', '=', messageId).where('status', 'in', ['queued', 'deferred']).executeTakeFirstOrThrow();
  if (!next) {
    await trx.updateTable('outbound').set({ next_attempt_at: null, job_id: null }).where('id', '=', messageId).execute();
    return null;
  }
  return scheduleRunAt(trx, boss, messageId, new Date(next));
}

/** Queues a run of the message at `at` and makes it the live one (the previous becomes stale). */
export async function scheduleRunAt(trx: Kysely<Database>, boss: PgBoss, messageId: string, at: Date): Promise<Date> {
  const id = randomUUID();
  await boss.insert(QUEUES.send, [{ id, data: { message_id: messageId }, startAfter: at, heartbeatSeconds: 10 }], { db: inTransaction(trx) });
  await trx.updateTable('outbound').set({ next_attempt_at: at, job_id: id }).where('id', '=', messageId).execute();
  return at;
}

