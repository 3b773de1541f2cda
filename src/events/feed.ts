import { sql, type Kysely } from 'kysely';
import type { Principal } from '../auth/scopes.ts';
import { MailroomError } from '../errors.ts';
import type { Database, EventTable } from '../store/schema.ts';
import type { Selectable } from 'kysely';

/**
 * Reading the event log in order: the one read path behind GET /v1/events, the SSE stream,
 * wait-for-reply and the webhook dispatcher. A position is "tx-seq" (migration 005 says why), and
 * only events whose transaction is older than every running one are visible, so a reader that
 * resumes after a cursor can neither skip an event nor see one twice.
 */
export interface EventView {
  id: string;
  /** Opaque position: pass it as `after` (or SSE Last-Event-ID) to resume right after this event. */
  cursor: string;
  type: string;
  created_at: string;
  inbox_id: string | null;
  message_id: string | null;
  thread_id: string | null;
  trace_id: string | null;
  data: Record<string, unknown>;
}

export interface FeedQuery {
  /** A cursor, or an event id (its position is looked up); absent: from the oldest retained event. */
  after?: string | null;
  types?: string[] | null;
  inbox_id?: string | null;
  limit?: number;
  /** Instead of reading on from `after`: the newest `last` events (still oldest first in the page). */
  last?: number;
}

const CURSOR = /^(\d{1,20})-(\d{1,20})$/;

export interface Position { tx: string; seq: string }

export function parseCursor(cursor: string): Position {
  const m = CURSOR.exec(cursor);
  if (!m) throw new MailroomError('invalid_request', `"${cursor.slice(0, 60)}" is not an event cursor (use the cursor or id of an event)`);
  return { tx: m[1], seq: m[2] };
}

export const formatCursor = (p: Position): string => `${p.tx}-${p.seq}`;

// Positions leave the database as text (xid8 and bigint exceed what JSON numbers hold exactly),
// under names of their own: ORDER BY tx would otherwise sort the text alias, not the column.
const POSITION = [sql<string>`tx::text`.as('pos_tx'), sql<string>`seq::text`.as('pos_seq')] as const;
type PositionRow = { pos_tx: string; pos_seq: string };
const positionOf = (r: PositionRow): Position => ({ tx: r.pos_tx, seq: r.pos_seq });

/** An event row as every reader selects it. */
export const EVENT_COLUMNS = ['id', 'type', 'created_at', 'inbox_id', 'message_id', 'thread_id', 'trace_id', 'data', ...POSITION] as const;

type EventRow = Omit<Selectable<EventTable>, 'tx' | 'seq'> & PositionRow;

export const toEventView = (r: EventRow): EventView => ({
  id: r.id,
  cursor: formatCursor(positionOf(r)),
  type: r.type,
  created_at: r.created_at.toISOString(),
  inbox_id: r.inbox_id,
  message_id: r.message_id,
  thread_id: r.thread_id,
  trace_id: r.trace_id,
  data: r.data as Record<string, unknown>,
});

/** Visible: written by a transaction older than every one still running (see migration 005). */
const visible = sql<boolean>`tx < pg_snapshot_xmin(pg_current_snapshot())`;

export class EventFeed {
  readonly #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  /**
   * Where `after` points: a cursor as is, an event id looked up, absent → the start of the log.
   * Refuses what is neither (invalid_request), so a stream can check its resume point up front.
   */
  async position(after: string | null | undefined): Promise<Position | null> {
    if (!after) return null;
    if (!after.startsWith('evt_')) return parseCursor(after);
    const row = await this.#db.selectFrom('events').select(POSITION).where('id', '=', after).executeTakeFirst();
    if (!row) throw new MailroomError('invalid_request', `event ${after} is unknown or past retention; resume from a cursor or from the start`);
    return positionOf(row);
  }

  /** The cursor of the newest visible event: where a stream that wants only new events starts. */
  async head(): Promise<string | null> {
    const row = await this.#db.selectFrom('events').select(POSITION)
      .where(visible).orderBy('tx', 'desc').orderBy('seq', 'desc').limit(1).executeTakeFirst();
    return row ? formatCursor(positionOf(row)) : null;
  }

  /**
   * One page of events after `q.after` that the principal may see. `next_cursor` is where the next
   * page starts: the last event returned, or the given position when nothing new is visible yet.
   */
  async read(p: Principal | null, q: FeedQuery): Promise<{ data: EventView[]; next_cursor: string | null }> {
    const start = await this.position(q.after);
    const limit = Math.min(Math.max(q.limit ?? 100, 1), 500);
    let query = this.#db.selectFrom('events')
      .select(EVENT_COLUMNS)
      .where(visible);
    if (start) query = query.where(sql<boolean>`(tx, seq) > (${start.tx}::xid8, ${start.seq}::bigint)`);
    if (q.types?.length) query = query.where('type', 'in', q.types);
    if (q.inbox_id) query = query.where('inbox_id', '=', q.inbox_id);
    // A token limited to some inboxes sees their events and nothing else (no domain or global ones).
    if (p && p.inboxIds !== null) {
      const ids = [...p.inboxIds];
      if (!ids.length) return { data: [], next_cursor: start ? formatCursor(start) : null };
      query = query.where('inbox_id', 'in', ids);
    }
    // The newest ones, for a screen of recent activity: read backwards, return in log order, so
    // next_cursor (the newest returned) is where a live reader continues.
    const rows = q.last
      ? ((await query.orderBy('tx', 'desc').orderBy('seq', 'desc').limit(Math.min(q.last, 500)).execute()) as EventRow[]).reverse()
      : (await query.orderBy('tx').orderBy('seq').limit(limit).execute()) as EventRow[];
    const data = rows.map(toEventView);
    return { data, next_cursor: data.length ? data[data.length - 1].cursor : start ? formatCursor(start) : null };
  }

  /** Deletes events older than the retention; returns how many. */
  async prune(olderThan: Date): Promise<number> {
    const r = await this.#db.deleteFrom('events').where('created_at', '<', olderThan).executeTakeFirst();
    return Number(r.numDeletedRows ?? 0);
  }
}
