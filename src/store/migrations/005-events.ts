import { sql, type Kysely } from 'kysely';

/**
 * Readers of the event log (GET /v1/events, SSE, wait-for-reply, webhooks) and the webhook tables.
 *
 * Why events get a (tx, seq) position and not just their time-ordered id: ids are made before the
 * transaction that writes them commits, and on PostgreSQL several processes commit in any order, so
 * a reader that paged by id could pass an id whose row was still uncommitted and never see it.
 * `tx` is the writing transaction's id (xid8, never wraps); a reader only returns events whose tx is
 * below the oldest transaction still running (pg_snapshot_xmin), and every transaction that can
 * still add events has a tx at or above it. Ordering by (tx, seq) is therefore an order in which
 * nothing can appear behind a reader: replay misses no event and sees none twice.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE events ADD COLUMN tx xid8 NOT NULL DEFAULT pg_current_xact_id()`.execute(db);
  await sql`ALTER TABLE events ADD COLUMN seq bigserial`.execute(db);
  await db.schema.createIndex('events_position').on('events').columns(['tx', 'seq']).execute();
  await db.schema.createIndex('events_created').on('events').column('created_at').execute();
  // Wait-for-reply asks "what arrived in this inbox since T" after every advance of the log.
  await db.schema.createIndex('messages_inbox_created').on('messages').columns(['inbox_id', 'created_at']).execute();

  await db.schema
    .createTable('webhooks')
    .addColumn('id', 'text', (c) => c.primaryKey()) // whk_<ulid>
    .addColumn('url', 'text', (c) => c.notNull())
    .addColumn('description', 'text')
    .addColumn('event_types', 'jsonb') // null: every type
    .addColumn('inbox_ids', 'jsonb') // null: every inbox the creating token could see
    .addColumn('secret', 'text', (c) => c.notNull()) // whsec_<base64>
    // Secret rotation: the previous secret keeps signing (a second signature) until it expires.
    .addColumn('previous_secret', 'text')
    .addColumn('previous_secret_expires_at', 'timestamptz')
    .addColumn('enabled', 'boolean', (c) => c.notNull())
    .addColumn('disabled_reason', 'text')
    // Where the dispatcher is in the event log for this endpoint ("tx-seq"); events after it
    // become deliveries.
    .addColumn('cursor', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('webhook_deliveries')
    .addColumn('id', 'text', (c) => c.primaryKey()) // whd_<ulid>: the webhook-id header, the same on every retry
    .addColumn('webhook_id', 'text', (c) => c.notNull())
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addColumn('event_cursor', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull()) // pending | succeeded | failed
    .addColumn('attempts', 'integer', (c) => c.notNull())
    .addColumn('next_attempt_at', 'timestamptz')
    .addColumn('last_attempt_at', 'timestamptz')
    .addColumn('last_status', 'integer')
    .addColumn('last_error', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('delivered_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('webhook_deliveries_unique').on('webhook_deliveries').columns(['webhook_id', 'event_id']).unique().execute();
  await db.schema.createIndex('webhook_deliveries_due').on('webhook_deliveries').columns(['status', 'next_attempt_at']).execute();

  // One row per attempt, for operators: status and error only, never the receiver's response body.
  await db.schema
    .createTable('webhook_attempts')
    .addColumn('delivery_id', 'text', (c) => c.notNull())
    .addColumn('at', 'timestamptz', (c) => c.notNull())
    .addColumn('status', 'integer')
    .addColumn('error', 'text')
    .addColumn('duration_ms', 'integer', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('webhook_attempts_delivery').on('webhook_attempts').columns(['delivery_id', 'at']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const t of ['webhook_attempts', 'webhook_deliveries', 'webhooks']) await db.schema.dropTable(t).execute();
  await db.schema.dropIndex('messages_inbox_created').execute();
  await db.schema.dropIndex('events_created').execute();
  await db.schema.dropIndex('events_position').execute();
  await sql`ALTER TABLE events DROP COLUMN seq, DROP COLUMN tx`.execute(db);
}
