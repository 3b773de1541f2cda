import { sql, type Kysely } from 'kysely';
import { MailroomError } from '../errors.ts';
import type { Database } from '../store/schema.ts';

/**
 * Read-only sending statistics for the operator console's health view (issue 8), computed from the
 * same rows the sending path writes: nothing is kept beside them, so they cannot disagree.
 *
 * Time buckets are computed from the epoch (seconds since 1970-01-01 UTC), not with date_trunc:
 * date_trunc on a timestamptz truncates in the session's time zone, which differs between an
 * embedded PGlite (UTC) and a PostgreSQL server configured for its locale. Epoch arithmetic gives
 * the same UTC buckets on both, and the SQL is the same on both engines.
 */
export type Bucket = 'hour' | 'day';
const BUCKET_SECONDS: Record<Bucket, number> = { hour: 3600, day: 86400 };
/** Default look-back: two days of hours, a month of days. */
const DEFAULT_SPAN: Record<Bucket, number> = { hour: 48, day: 30 };
/** A chart of more points than this is unreadable and the query unbounded: ask for a coarser bucket. */
export const MAX_BUCKETS = 1000;

export interface SendingBucket {
  /** The bucket's first instant, UTC, ISO 8601. */
  start: string;
  /** Recipients accepted by the remote server (final state sent). */
  sent: number;
  /** Recipients that bounced, synchronously (5xx) or later by a DSN; hard and soft. */
  bounced: number;
  /** Of those, hard bounces: the ones the auto-pause (throttle.ts) counts. */
  hard_bounced: number;
  /** Complaints (ARF reports) received in the bucket. */
  complained: number;
  /** bounced / (sent + bounced); null when nothing finished in the bucket. */
  bounce_rate: number | null;
  /**
   * Attempts whose outcome is unknown: the message was transmitted and the server's reply never came
   * (transports.ts `uncertain`). Each was retried, so each may have delivered a second copy.
   */
  duplicate_risk: number;
}

export interface SendingStats { bucket: Bucket; since: string; until: string; domain: string | null; data: SendingBucket[] }

/**
 * Recipient outcomes per time bucket. Each recipient counts once, in the bucket of its final state
 * (its `updated_at`): a message sent at 10:00 and bounced by a DSN at 14:00 is a bounce at 14:00,
 * not a send at 10:00 and a bounce at 14:00. That is the counting of the auto-pause in throttle.ts,
 * so the chart shows the quantity that pauses a domain. `domain` narrows to one sending domain.
 */
export async function sendingStats(db: Kysely<Database>, q: { bucket: Bucket; since?: Date; domain?: string }, now = new Date()): Promise<SendingStats> {
  const secs = BUCKET_SECONDS[q.bucket];
  const floorTo = (t: number) => Math.floor(t / 1000 / secs) * secs * 1000;
  const until = floorTo(now.getTime());
  const since = floorTo(q.since ? q.since.getTime() : now.getTime() - (DEFAULT_SPAN[q.bucket] - 1) * secs * 1000);
  if (since > until) throw new MailroomError('invalid_request', 'since is in the future');
  const count = (until - since) / (secs * 1000) + 1;
  if (count > MAX_BUCKETS) throw new MailroomError('invalid_request', `${count} ${q.bucket} buckets since ${new Date(since).toISOString()}: at most ${MAX_BUCKETS}; use bucket=day or a later since`);
  const domain = q.domain?.toLowerCase() ?? null;

  // The bucket number of a timestamp. The divisor is a literal (from the fixed table above), so the
  // SELECT and GROUP BY expressions are the same text; a bound parameter in each would be two
  // different parameters to PostgreSQL, which then refuses the grouping.
  const bucketOf = (col: string) => sql<string>`floor(extract(epoch from ${sql.ref(col)}) / ${sql.lit(secs)})::bigint`;

  let outcomes = db.selectFrom('outbound_recipients')
    .select([
      bucketOf('outbound_recipients.updated_at').as('b'),
      sql<string>`count(*) FILTER (WHERE outbound_recipients.status = 'sent')`.as('sent'),
      sql<string>`count(*) FILTER (WHERE outbound_recipients.status = 'bounced')`.as('bounced'),
      sql<string>`count(*) FILTER (WHERE outbound_recipients.status = 'bounced' AND outbound_recipients.bounce_type = 'hard')`.as('hard'),
    ])
    .where('outbound_recipients.status', 'in', ['sent', 'bounced'])
    .where('outbound_recipients.updated_at', '>=', new Date(since))
    .groupBy(bucketOf('outbound_recipients.updated_at'));
  if (domain) {
    outcomes = outcomes.innerJoin('outbound', 'outbound.id', 'outbound_recipients.message_id')
      .innerJoin('inboxes', 'inboxes.id', 'outbound.inbox_id').where('inboxes.domain', '=', domain);
  }

  // Complaints change no recipient row (the message was delivered), and an attempt of unknown outcome
  // leaves only a retry behind: both are only in the event log.
  let fromEvents = db.selectFrom('events')
    .select([
      bucketOf('events.created_at').as('b'),
      sql<string>`count(*) FILTER (WHERE events.type = 'message.complained')`.as('n'),
      sql<string>`count(*) FILTER (WHERE events.type <> 'message.complained' AND events.data->>'duplicate_risk' = 'true')`.as('risk'),
    ])
    .where('events.type', 'in', ['message.complained', 'message.deferred', 'message.failed'])
    .where('events.created_at', '>=', new Date(since))
    .groupBy(bucketOf('events.created_at'));
  if (domain) fromEvents = fromEvents.innerJoin('inboxes', 'inboxes.id', 'events.inbox_id').where('inboxes.domain', '=', domain);

  const [rows, eventRows] = await Promise.all([outcomes.execute(), fromEvents.execute()]);
  const byBucket = new Map(rows.map((r) => [Number(r.b), r]));
  const eventsBy = new Map(eventRows.map((r) => [Number(r.b), { complained: Number(r.n), risk: Number(r.risk) }]));

  // Every bucket in the range, empty ones as zeros: a chart's time axis must not skip quiet hours.
  const data: SendingBucket[] = [];
  for (let t = since; t <= until; t += secs * 1000) {
    const r = byBucket.get(t / 1000 / secs);
    const sent = Number(r?.sent ?? 0);
    const bounced = Number(r?.bounced ?? 0);
    data.push({
      start: new Date(t).toISOString(), sent, bounced, hard_bounced: Number(r?.hard ?? 0),
      complained: eventsBy.get(t / 1000 / secs)?.complained ?? 0,
      bounce_rate: sent + bounced > 0 ? bounced / (sent + bounced) : null,
      duplicate_risk: eventsBy.get(t / 1000 / secs)?.risk ?? 0,
    });
  }
  return { bucket: q.bucket, since: new Date(since).toISOString(), until: new Date(until + secs * 1000).toISOString(), domain, data };
}

export interface HeldDomain {
  /** The recipient domain (gmail.com…). */
  domain: string;
  /** Recipients to it waiting for a later attempt. */
  held: number;
  /** Of those, never attempted yet: held back by a shared rate limit (limits.ts). */
  rate_limited: number;
  /** Of those, deferred by the remote server (4xx, a connection refused, a timeout): it throttles us, or is down. */
  deferred: number;
  /** The earliest next attempt. */
  next_attempt_at: string | null;
  /** The remote server's latest deferral reply, e.g. "421 4.7.0 too many connections". */
  last_response: string | null;
}

/**
 * Recipient domains that mail is waiting for now: recipients queued or deferred whose next attempt
 * is in the future. No table records "throttled domains": a recipient held by a rate limit keeps
 * status `queued` with the time its window frees (worker.ts), one deferred by the remote server gets
 * status `deferred` with its retry time, so the pending rows are the record. (A sending domain
 * paused by its bounce rate holds its mail too; that is a property of the domain, on /v1/domains.)
 * The partial index outbound_recipients_pending covers the status filter.
 */
export async function heldRecipientDomains(db: Kysely<Database>, now = new Date(), limit = 100): Promise<HeldDomain[]> {
  const rows = await db.selectFrom('outbound_recipients')
    .select([
      'domain',
      sql<string>`count(*)`.as('held'),
      sql<string>`count(*) FILTER (WHERE status = 'queued')`.as('rate_limited'),
      sql<string>`count(*) FILTER (WHERE status = 'deferred')`.as('deferred'),
      sql<Date | string | null>`min(next_attempt_at)`.as('next_attempt_at'),
      sql<string | null>`(array_agg(response ORDER BY updated_at DESC) FILTER (WHERE status = 'deferred' AND response IS NOT NULL))[1]`.as('last_response'),
    ])
    .where('status', 'in', ['queued', 'deferred'])
    .where('next_attempt_at', '>', now)
    .groupBy('domain')
    .orderBy(sql`count(*)`, 'desc').orderBy('domain')
    .limit(limit)
    .execute();
  return rows.map((r) => ({
    domain: r.domain, held: Number(r.held), rate_limited: Number(r.rate_limited), deferred: Number(r.deferred),
    next_attempt_at: r.next_attempt_at ? new Date(r.next_attempt_at).toISOString() : null,
    last_response: r.last_response,
  }));
}
