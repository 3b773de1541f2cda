import { sql, type Kysely } from 'kysely';

/**
 * Sending: the outbox (one row per sent message, keyed by the message id), its recipients with their
 * own delivery state, sending domains with their DKIM keys, the suppression list, and the event log
 * that every state change is written to (the events issue adds readers: webhooks, SSE, MCP).
 */
export async function up(db: Kysely<any>): Promise<void> {
  // Marketing inboxes put List-Unsubscribe (RFC 8058 one-click) on everything they send.
  await db.schema.alterTable('inboxes').addColumn('marketing', 'boolean', (c) => c.notNull().defaultTo(false)).execute();
  await db.schema
    .createTable('outbound')
    .addColumn('id', 'text', (c) => c.primaryKey()) // = messages.id of the stored outbound message
    .addColumn('inbox_id', 'text', (c) => c.notNull().references('inboxes.id'))
    .addColumn('idempotency_key', 'text')
    .addColumn('request_hash', 'text', (c) => c.notNull())
    // A key is honoured until then; afterwards the same key may name a new send (the window).
    .addColumn('key_expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('envelope_from', 'text', (c) => c.notNull())
    .addColumn('raw_sha256', 'text', (c) => c.notNull())
    .addColumn('raw_size', 'integer', (c) => c.notNull())
    .addColumn('trace_id', 'text', (c) => c.notNull())
    .addColumn('labels', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('metadata', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    // After this, temporary failures become permanent ones (MAILROOM_SEND_LIFETIME_HOURS).
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('next_attempt_at', 'timestamptz')
    // The one pg-boss job allowed to work on this message; any other job for it is stale and exits.
    .addColumn('job_id', 'text')
    .execute();
  // The idempotency guarantee lives here, in the database, so it holds across processes: two
  // requests with one key race on this index and exactly one insert wins.
  await db.schema.createIndex('outbound_idempotency').on('outbound').columns(['inbox_id', 'idempotency_key']).unique()
    .where(sql.ref('idempotency_key'), 'is not', null).execute();

  await db.schema
    .createTable('outbound_recipients')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('message_id', 'text', (c) => c.notNull().references('outbound.id').onDelete('cascade'))
    .addColumn('kind', 'text', (c) => c.notNull()) // to | cc | bcc
    .addColumn('address', 'text', (c) => c.notNull())
    .addColumn('domain', 'text', (c) => c.notNull())
    // queued → sending → sent | deferred → bounced | failed | suppressed
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('response', 'text')
    .addColumn('bounce_type', 'text')
    .addColumn('bounce_reason', 'text')
    .addColumn('transport', 'text')
    // Not before this (a retry after a temporary failure, or the next free slot of a rate limit).
    .addColumn('next_attempt_at', 'timestamptz')
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull())
    .addColumn('sent_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('outbound_recipients_message').on('outbound_recipients').column('message_id').execute();
  // "Cancel every queued message to this address" when it is suppressed.
  await db.schema.createIndex('outbound_recipients_pending').on('outbound_recipients').column('address')
    .where(sql.ref('status'), 'in', sql`('queued', 'deferred')`).execute();

  await db.schema
    .createTable('domains')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull().unique())
    .addColumn('dkim_selector', 'text', (c) => c.notNull())
    .addColumn('dkim_private_key', 'text', (c) => c.notNull())
    .addColumn('dkim_public_key', 'text', (c) => c.notNull())
    .addColumn('verification', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('verified_at', 'timestamptz')
    // Sending from the domain is paused (bounce rate too high) until an operator resumes it.
    .addColumn('paused_at', 'timestamptz')
    .addColumn('pause_reason', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('suppressions')
    .addColumn('id', 'text', (c) => c.primaryKey())
    // global: nobody sends to the address; domain: no inbox of that sending domain; inbox: that inbox.
    .addColumn('scope', 'text', (c) => c.notNull())
    .addColumn('scope_value', 'text', (c) => c.notNull()) // '' for global, the domain, or the inbox id
    .addColumn('address', 'text', (c) => c.notNull())
    .addColumn('reason', 'text', (c) => c.notNull()) // hard_bounce | complaint | unsubscribe | manual
    .addColumn('detail', 'text')
    .addColumn('source_event_id', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('suppressions_unique').on('suppressions').columns(['address', 'scope', 'scope_value']).unique().execute();

  await db.schema
    .createTable('events')
    .addColumn('id', 'text', (c) => c.primaryKey()) // evt_<ulid>: ordered by creation
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('inbox_id', 'text')
    .addColumn('message_id', 'text')
    .addColumn('thread_id', 'text')
    .addColumn('trace_id', 'text')
    .addColumn('data', 'jsonb', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('events_message').on('events').column('message_id').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const t of ['events', 'suppressions', 'domains', 'outbound_recipients', 'outbound']) await db.schema.dropTable(t).execute();
}
