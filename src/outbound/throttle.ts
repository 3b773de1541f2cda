import { sql, type Kysely } from 'kysely';
import type { Config } from '../config/config.ts';
import { appendEvents } from '../events/events.ts';
import type { PgBoss } from 'pg-boss';
import type { Database } from '../store/schema.ts';
import { scheduleNextRuns } from './schedule.ts';

/**
 * Auto-throttle: a sending domain whose recipients bounce too often is paused before mailbox
 * providers start treating it as a spammer. After every bounce, the domain's bounce rate over the
 * sliding window (sent + bounced recipients of its inboxes, by last update) is checked; past the
 * threshold, with enough sends to mean something, sending from it stops with a `domain.throttled`
 * event until an operator resumes it. Queued mail is held, not dropped.
 */
export async function checkBounceRate(trx: Kysely<Database>, domain: string, policy: Config['outbound']['bounceRate'], now: Date): Promise<boolean> {
  const since = new Date(now.getTime() - policy.windowHours * 3600_000);
  const { sends, bounces } = await trx.selectFrom('outbound_recipients')
    .innerJoin('outbound', 'outbound.id', 'outbound_recipients.message_id')
    .innerJoin('inboxes', 'inboxes.id', 'outbound.inbox_id')
    .select([
      sql<string>`count(*)`.as('sends'),
      sql<string>`count(*) FILTER (WHERE outbound_recipients.status = 'bounced' AND outbound_recipients.bounce_type = 'hard')`.as('bounces'),
    ])
    .where('inboxes.domain', '=', domain)
    .where('outbound_recipients.status', 'in', ['sent', 'bounced'])
    .where('outbound_recipients.updated_at', '>', since)
    .executeTakeFirstOrThrow();
  const n = Number(sends);
  const b = Number(bounces);
  if (n < policy.minSends || b / n <= policy.threshold) return false;
  const paused = await trx.updateTable('domains')
    .set({ paused_at: now, pause_reason: `bounce rate ${(100 * b / n).toFixed(1)} % (${b} of ${n} in ${policy.windowHours} h) exceeds ${(100 * policy.threshold).toFixed(1)} %` })
    .where('name', '=', domain).where('paused_at', 'is', null).returning('name').executeTakeFirst();
  if (paused) {
    await appendEvents(trx, [{ type: 'domain.throttled', data: { domain, bounce_rate: b / n, bounces: b, sends: n, window_hours: policy.windowHours, threshold: policy.threshold } }], now);
  }
  return Boolean(paused);
}

/** Whether sending from `domain` is paused. */
export async function isPaused(db: Kysely<Database>, domain: string): Promise<boolean> {
  const row = await db.selectFrom('domains').select('paused_at').where('name', '=', domain).executeTakeFirst();
  return Boolean(row?.paused_at);
}

/**
 * Resumes a paused domain and reschedules its held mail at once (each message's run is moved to
 * its earliest due recipient), instead of waiting for the next periodic look.
 */
export async function resumeDomain(db: Kysely<Database>, boss: PgBoss, domain: string, now = new Date()): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const resumed = await trx.updateTable('domains').set({ paused_at: null, pause_reason: null }).where('name', '=', domain).where('paused_at', 'is not', null).returning('name').executeTakeFirst();
    if (!resumed) return false;
    await appendEvents(trx, [{ type: 'domain.resumed', data: { domain } }], now);
    const held = await trx.selectFrom('outbound').innerJoin('inboxes', 'inboxes.id', 'outbound.inbox_id').select('outbound.id')
      .where('inboxes.domain', '=', domain).where('outbound.job_id', 'is not', null).execute();
    await scheduleNextRuns(trx, boss, held.map((m) => m.id), now);
    return true;
  });
}
