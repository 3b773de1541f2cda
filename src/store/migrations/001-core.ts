import { sql, type Kysely } from 'kysely';

/** The core tables: inboxes, tokens, receipts and deliveries, messages, threads, attachments, blobs. */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('inboxes')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('username', 'text', (c) => c.notNull())
    .addColumn('domain', 'text', (c) => c.notNull())
    .addColumn('address', 'text', (c) => c.notNull())
    .addColumn('display_name', 'text')
    .addColumn('metadata', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('client_id', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull())
    .addColumn('deleted_at', 'timestamptz')
    .execute();
  // An address belongs to at most one live inbox; a deleted inbox frees it.
  await db.schema.createIndex('inboxes_address_live').on('inboxes').column('address').unique().where(sql.ref('deleted_at'), 'is', null).execute();
  // client_id makes creation idempotent: the same client_id always names the same inbox.
  await db.schema.createIndex('inboxes_client_id').on('inboxes').column('client_id').unique().execute();

  await db.schema
    .createTable('tokens')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text')
    .addColumn('hash', 'text', (c) => c.notNull().unique())
    .addColumn('prefix', 'text', (c) => c.notNull())
    .addColumn('scopes', sql`text[]`, (c) => c.notNull())
    .addColumn('inbox_ids', sql`text[]`)
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('last_used_at', 'timestamptz')
    .addColumn('revoked_at', 'timestamptz')
    .execute();

  await db.schema
    .createTable('receipts')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('mail_from', 'text', (c) => c.notNull())
    .addColumn('helo', 'text')
    .addColumn('remote_address', 'text')
    .addColumn('tls', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('raw_sha256', 'text', (c) => c.notNull())
    .addColumn('raw_size', 'integer', (c) => c.notNull())
    .addColumn('trace_size', 'integer', (c) => c.notNull())
    .addColumn('received_at', 'timestamptz', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('ingested_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('receipts_pending').on('receipts').column('received_at').where(sql.ref('state'), '=', 'accepted').execute();

  await db.schema
    .createTable('deliveries')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('receipt_id', 'text', (c) => c.notNull().references('receipts.id').onDelete('cascade'))
    .addColumn('inbox_id', 'text', (c) => c.notNull().references('inboxes.id'))
    .addColumn('rcpt_to', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('deliveries_receipt').on('deliveries').column('receipt_id').execute();

  await db.schema
    .createTable('threads')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('inbox_id', 'text', (c) => c.notNull().references('inboxes.id'))
    .addColumn('subject', 'text')
    .addColumn('message_count', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('first_message_at', 'timestamptz', (c) => c.notNull())
    .addColumn('last_message_at', 'timestamptz', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('threads_inbox').on('threads').columns(['inbox_id', 'id']).execute();

  await db.schema
    .createTable('thread_refs')
    .addColumn('inbox_id', 'text', (c) => c.notNull())
    .addColumn('ref', 'text', (c) => c.notNull())
    .addColumn('thread_id', 'text', (c) => c.notNull().references('threads.id'))
    .addPrimaryKeyConstraint('thread_refs_pk', ['inbox_id', 'ref'])
    .execute();

  await db.schema
    .createTable('messages')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('inbox_id', 'text', (c) => c.notNull().references('inboxes.id'))
    .addColumn('thread_id', 'text', (c) => c.notNull().references('threads.id'))
    .addColumn('receipt_id', 'text')
    .addColumn('direction', 'text', (c) => c.notNull())
    .addColumn('from_address', 'text')
    .addColumn('from_name', 'text')
    .addColumn('to', 'jsonb', (c) => c.notNull())
    .addColumn('cc', 'jsonb', (c) => c.notNull())
    .addColumn('reply_to', 'jsonb', (c) => c.notNull())
    .addColumn('subject', 'text')
    .addColumn('date', 'timestamptz')
    .addColumn('message_id', 'text')
    .addColumn('in_reply_to', 'text')
    .addColumn('references', 'jsonb', (c) => c.notNull())
    .addColumn('text', 'text')
    .addColumn('html', 'text')
    .addColumn('headers', 'jsonb', (c) => c.notNull())
    .addColumn('size', 'integer', (c) => c.notNull())
    .addColumn('raw_sha256', 'text', (c) => c.notNull())
    .addColumn('received_at', 'timestamptz', (c) => c.notNull())
    .addColumn('parse_warnings', 'jsonb', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('messages_inbox').on('messages').columns(['inbox_id', 'id']).execute();
  await db.schema.createIndex('messages_thread').on('messages').columns(['thread_id', 'id']).execute();

  await db.schema
    .createTable('attachments')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('message_id', 'text', (c) => c.notNull().references('messages.id').onDelete('cascade'))
    .addColumn('position', 'integer', (c) => c.notNull())
    .addColumn('filename', 'text')
    .addColumn('content_type', 'text', (c) => c.notNull())
    .addColumn('disposition', 'text')
    .addColumn('content_id', 'text')
    .addColumn('size', 'integer', (c) => c.notNull())
    .addColumn('sha256', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('attachments_message').on('attachments').column('message_id').execute();

  // Content-addressed blobs (raw messages and attachment bodies) when PostgreSQL is the store.
  // The embedded mode keeps blobs as files instead; see store/blobs.ts.
  await db.schema
    .createTable('blobs')
    .addColumn('sha256', 'text', (c) => c.primaryKey())
    .addColumn('size', 'integer', (c) => c.notNull())
    .addColumn('data', 'bytea', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('settings')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('value', 'jsonb', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const t of ['settings', 'blobs', 'attachments', 'messages', 'thread_refs', 'threads', 'deliveries', 'receipts', 'tokens', 'inboxes']) {
    await db.schema.dropTable(t).execute();
  }
}
