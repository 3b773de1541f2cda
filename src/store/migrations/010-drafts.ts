import { sql, type Kysely } from 'kysely';

/**
 * Drafts (issue 7, human in the loop): a message an agent or a campaign run prepared and a person
 * approves, edits or rejects before it is sent. The request is stored as the send API would take
 * it, so approving is sending that request, checked again at that moment.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('drafts')
    .addColumn('id', 'text', (c) => c.primaryKey()) // drf_<ulid>
    .addColumn('inbox_id', 'text', (c) => c.notNull().references('inboxes.id').onDelete('cascade'))
    // The received (or sent) message this draft answers; null for a new conversation.
    .addColumn('reply_to_message_id', 'text')
    .addColumn('reply_all', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('request', 'jsonb', (c) => c.notNull()) // the send request (SendMessage) as it will be sent
    // pending → approved → sent | failed; pending → rejected; pending/approved → cancelled
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('send_at', 'timestamptz') // approved drafts go at this time (null: at once)
    .addColumn('client_id', 'text') // idempotent creation
    .addColumn('token_id', 'text') // who created it
    .addColumn('campaign_id', 'text')
    .addColumn('run_id', 'text')
    .addColumn('step', 'integer') // the campaign step it is (null: an answer to a reply)
    .addColumn('message_id', 'text') // the outbound message, once sent
    .addColumn('reviewed_by', 'text') // the token that approved or rejected it
    .addColumn('review_note', 'text')
    .addColumn('error', 'jsonb') // { code, message } of a send refused at approval or send time
    .addColumn('job_id', 'text') // the draft-send job allowed to send it
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull())
    .addColumn('approved_at', 'timestamptz')
    .addColumn('sent_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('drafts_inbox').on('drafts').columns(['inbox_id', 'id']).execute();
  await db.schema.createIndex('drafts_status').on('drafts').columns(['status', 'id']).execute();
  await db.schema.createIndex('drafts_client_id').on('drafts').columns(['inbox_id', 'client_id']).unique()
    .where(sql.ref('client_id'), 'is not', null).execute();
  // One draft per campaign step of a run: a repeated step finds it instead of making another.
  await db.schema.createIndex('drafts_run_step').on('drafts').columns(['run_id', 'step']).unique()
    .where(sql.ref('step'), 'is not', null).execute();
  await db.schema.createIndex('drafts_run').on('drafts').column('run_id').where(sql.ref('run_id'), 'is not', null).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('drafts').execute();
}
