import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import type { PgBoss } from 'pg-boss';
import { inTransactionPrepared, QUEUES } from '../jobs/boss.ts';
import type { Database } from '../store/schema.ts';

/**
 * Queues each message's next run (or none, when every recipient is final) and makes it the live
 * job, in the transaction that commits the state it is derived from. A constant number of
 * statements for any number of messages (the send worker settles a batch of jobs per transaction):
 * one that reads when each is next due and clears the messages that are done (a data-modifying
 * CTE: the common case, every recipient final, is one round trip), then, for the rest, one job
 * insert and one update.
 */
export async function scheduleNextRuns(trx: Kysely<Database>, boss: PgBoss, messageIds: string[], now: Date): Promise<Map<string, Date>> {
  const out = new Map<string, Date>();
  if (!messageIds.length) return out;
  const rows = await trx
    .with('due', (db) => db.selectFrom('outbound_recipients')
      .select(['message_id', sql<Date>`min(coalesce(next_attempt_at, ${now}))`.as('next')])
      .where('message_id', 'in', messageIds).where('status', 'in', ['queued', 'deferred'])
      .groupBy('message_id'))
    .with('done', (db) => db.updateTable('outbound').set({ next_attempt_at: null, job_id: null })
      .where('id', 'in', messageIds).where('id', 'not in', (eb) => eb.selectFrom('due').select('message_id')))
    .selectFrom('due').select(['message_id', 'next']).execute();
  for (const r of rows) out.set(r.message_id, new Date(r.next));
  await scheduleRunsAt(trx, boss, [...out].map(([messageId, at]) => ({ messageId, at })));
  return out;
}

/** Queues a run of each message at its `at` and makes it the live one (the previous becomes stale). */
export async function scheduleRunsAt(trx: Kysely<Database>, boss: PgBoss, runs: { messageId: string; at: Date }[]): Promise<void> {
  if (!runs.length) return;
  const jobs = runs.map((r) => ({ id: randomUUID(), data: { message_id: r.messageId }, startAfter: r.at, heartbeatSeconds: 10 }));
  // A fixed text (one queue, the same options): a named prepared statement on PostgreSQL.
  await boss.insert(QUEUES.send, jobs, { db: inTransactionPrepared(trx) });
  const values = jobs.map((j) => sql`(${j.data.message_id}, ${j.id}, ${j.startAfter.toISOString()}::timestamptz)`);
  await sql`UPDATE outbound AS o SET next_attempt_at = v.at, job_id = v.job FROM (VALUES ${sql.join(values)}) AS v(id, job, at) WHERE o.id = v.id`.execute(trx);
}
