import type { Kysely } from 'kysely';
import { newId } from '../ids.ts';
import type { Database } from '../store/schema.ts';

/**
 * The event log: every state change Mailroom makes is a row, written in the same transaction as
 * the change itself, so the log never says something happened that did not (or the reverse).
 * Readers (GET /v1/events, SSE, wait-for-reply, webhooks, MCP) go through events/feed.ts, which
 * orders the log by the writing transaction (migration 005) so that none of them can miss a row.
 */
/** Every event type, in one list: webhook filters are validated against it. */
export const EVENT_TYPES = [
  'inbox.created', 'inbox.deleted',
  'message.received', 'message.quarantined', 'message.released',
  'message.queued', 'message.sent', 'message.deferred', 'message.bounced', 'message.failed',
  'message.suppressed', 'message.complained', 'message.unsubscribed',
  'domain.created', 'domain.verified', 'domain.throttled', 'domain.resumed',
  'webhook.disabled', 'webhook.replayed',
  'campaign.created', 'campaign.paused', 'campaign.resumed', 'campaign.completed',
  'run.reply', 'run.escalated', 'run.finished', 'run.dead', 'run.retried', 'run.rerouted',
  'draft.created', 'draft.updated', 'draft.approved', 'draft.rejected', 'draft.sent', 'draft.failed', 'draft.cancelled',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export interface NewEvent {
  type: EventType;
  inbox_id?: string | null;
  message_id?: string | null;
  thread_id?: string | null;
  trace_id?: string | null;
  data?: Record<string, unknown>;
}

export async function appendEvents(db: Kysely<Database>, events: NewEvent[], at = new Date()): Promise<string[]> {
  if (!events.length) return [];
  const rows = eventRows(events, at);
  await db.insertInto('events').values(rows).execute();
  return rows.map((r) => r.id);
}

/** The rows `appendEvents` inserts, for a writer that inserts them within a larger statement. */
export function eventRows(events: NewEvent[], at: Date) {
  return events.map((e) => ({
    id: newId('evt'),
    type: e.type,
    created_at: at,
    inbox_id: e.inbox_id ?? null,
    message_id: e.message_id ?? null,
    thread_id: e.thread_id ?? null,
    trace_id: e.trace_id ?? null,
    data: JSON.stringify(e.data ?? {}),
  }));
}
