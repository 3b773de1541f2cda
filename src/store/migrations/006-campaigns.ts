import { sql, type Kysely } from 'kysely';

/**
 * Campaigns (issue 6): a campaign, its leads, one run per lead (a persisted state machine), what
 * each run sent and which replies it handled, the agent-call spans of its trace, and the per-day
 * send count of each sender inbox.
 *
 * A run's effects are idempotent by construction: `run_sends` is keyed (run, step) and the send
 * itself carries an idempotency key derived from (campaign, lead, step); `run_replies` is keyed
 * (run, message). So a step repeated after a crash, or by a second orchestrator process, finds its
 * effect already there instead of doing it twice.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('campaigns')
    .addColumn('id', 'text', (c) => c.primaryKey()) // cmp_<ulid>
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull()) // running | paused | completed | cancelled
    .addColumn('spec', 'jsonb', (c) => c.notNull()) // the validated definition, leads left out
    .addColumn('senders', 'jsonb', (c) => c.notNull()) // [{ inbox_id, address, daily_cap }] resolved at creation
    .addColumn('clock', 'jsonb', (c) => c.notNull()) // { scale, originReal, originSim }
    .addColumn('client_id', 'text')
    .addColumn('token_id', 'text') // who created it
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull())
    .addColumn('completed_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('campaigns_client_id').on('campaigns').column('client_id').unique()
    .where(sql.ref('client_id'), 'is not', null).execute();

  await db.schema
    .createTable('campaign_leads')
    .addColumn('id', 'text', (c) => c.primaryKey()) // led_<ulid>
    .addColumn('campaign_id', 'text', (c) => c.notNull().references('campaigns.id').onDelete('cascade'))
    .addColumn('email', 'text', (c) => c.notNull())
    .addColumn('email_key', 'text', (c) => c.notNull()) // lower-cased: the identity of a lead
    .addColumn('domain', 'text', (c) => c.notNull()) // the company, for "a reply from anyone at the same company"
    .addColumn('data', 'jsonb', (c) => c.notNull()) // the Lead as given (names, fields, crm)
    .addColumn('timezone', 'text', (c) => c.notNull())
    .addColumn('timezone_source', 'text', (c) => c.notNull()) // lead | domain | default
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('campaign_leads_unique').on('campaign_leads').columns(['campaign_id', 'email_key']).unique().execute();
  await db.schema.createIndex('campaign_leads_email').on('campaign_leads').column('email_key').execute();
  await db.schema.createIndex('campaign_leads_domain').on('campaign_leads').column('domain').execute();

  await db.schema
    .createTable('campaign_runs')
    .addColumn('id', 'text', (c) => c.primaryKey()) // run_<ulid>
    .addColumn('campaign_id', 'text', (c) => c.notNull().references('campaigns.id').onDelete('cascade'))
    .addColumn('lead_id', 'text', (c) => c.notNull().references('campaign_leads.id').onDelete('cascade'))
    .addColumn('trace_id', 'text', (c) => c.notNull())
    // pending → active ⇄ waiting → done | needs_human | dead; paused with its campaign
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('stage', 'text', (c) => c.notNull()) // research | personalize | sequence | send | await_reply | finished
    .addColumn('step', 'integer', (c) => c.notNull()) // the next step to send (0-based)
    .addColumn('inbox_id', 'text') // the sender inbox, chosen at the first send and kept for the thread
    .addColumn('thread_id', 'text')
    .addColumn('last_message_id', 'text') // the last message sent: follow-ups reply to it
    .addColumn('notes', 'jsonb') // research output
    .addColumn('draft', 'jsonb') // the personalised message for `step`, sent as is
    .addColumn('send_at', 'timestamptz') // campaign-clock time the next step goes (stage send) or the reply wait ends (await_reply)
    .addColumn('ooo_until', 'text') // YYYY-MM-DD from an out-of-office reply
    .addColumn('outcome', 'text') // why it ended: no_reply, replied, bounced, complained, unsubscribed, suppressed, company_replied, max_steps, needs_human, failed…
    .addColumn('reply_class', 'text')
    .addColumn('detail', 'text')
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0)) // failed agent calls in a row
    .addColumn('last_error', 'text')
    // Optimistic concurrency: every change bumps it, and a change made from a stale read is refused.
    .addColumn('version', 'integer', (c) => c.notNull().defaultTo(0))
    // The one pg-boss job allowed to work on this run (as outbound.job_id): any other exits at once.
    .addColumn('job_id', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull())
    .addColumn('finished_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('campaign_runs_campaign').on('campaign_runs').columns(['campaign_id', 'status']).execute();
  await db.schema.createIndex('campaign_runs_lead').on('campaign_runs').column('lead_id').execute();
  await db.schema.createIndex('campaign_runs_thread').on('campaign_runs').column('thread_id').execute();
  await db.schema.createIndex('campaign_runs_status').on('campaign_runs').columns(['status', 'updated_at']).execute();

  await db.schema
    .createTable('campaign_sends')
    .addColumn('run_id', 'text', (c) => c.notNull().references('campaign_runs.id').onDelete('cascade'))
    .addColumn('step', 'integer', (c) => c.notNull())
    .addColumn('campaign_id', 'text', (c) => c.notNull())
    .addColumn('inbox_id', 'text', (c) => c.notNull())
    .addColumn('day', 'text', (c) => c.notNull()) // the sender's campaign-clock day its daily cap counted this send in
    .addColumn('status', 'text', (c) => c.notNull()) // reserved (cap slot taken, send not yet confirmed) | sent
    .addColumn('message_id', 'text')
    .addColumn('idempotency_key', 'text', (c) => c.notNull())
    .addColumn('sim_at', 'timestamptz', (c) => c.notNull()) // campaign-clock time it was handed to the outbox
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addPrimaryKeyConstraint('campaign_sends_pk', ['run_id', 'step'])
    .execute();
  await db.schema.createIndex('campaign_sends_message').on('campaign_sends').column('message_id').execute();
  await db.schema.createIndex('campaign_sends_campaign').on('campaign_sends').columns(['campaign_id', 'step']).execute();

  await db.schema
    .createTable('campaign_sender_usage')
    .addColumn('campaign_id', 'text', (c) => c.notNull())
    .addColumn('inbox_id', 'text', (c) => c.notNull())
    .addColumn('day', 'text', (c) => c.notNull())
    .addColumn('count', 'integer', (c) => c.notNull())
    .addPrimaryKeyConstraint('campaign_sender_usage_pk', ['campaign_id', 'inbox_id', 'day'])
    .execute();

  await db.schema
    .createTable('campaign_replies')
    .addColumn('run_id', 'text', (c) => c.notNull().references('campaign_runs.id').onDelete('cascade'))
    .addColumn('message_id', 'text', (c) => c.notNull())
    .addColumn('campaign_id', 'text', (c) => c.notNull())
    .addColumn('sender', 'text', (c) => c.notNull()) // lead | company | other
    .addColumn('classification', 'text') // null: not classified (held for a human, or a colleague's mail elsewhere)
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('decision', 'jsonb', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addPrimaryKeyConstraint('campaign_replies_pk', ['run_id', 'message_id'])
    .execute();
  await db.schema.createIndex('campaign_replies_campaign').on('campaign_replies').column('campaign_id').execute();

  // The trace: one row per agent call, handoff or decision of a run (events with the run's
  // trace_id add the sends, bounces and replies).
  await db.schema
    .createTable('campaign_spans')
    .addColumn('id', 'text', (c) => c.primaryKey()) // spn_<ulid>
    .addColumn('run_id', 'text', (c) => c.notNull().references('campaign_runs.id').onDelete('cascade'))
    .addColumn('trace_id', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull()) // agent | handoff | decision | send | reply
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull()) // ok | error
    .addColumn('started_at', 'timestamptz', (c) => c.notNull())
    .addColumn('duration_ms', 'integer', (c) => c.notNull())
    .addColumn('sim_at', 'timestamptz', (c) => c.notNull())
    .addColumn('input', 'jsonb')
    .addColumn('output', 'jsonb')
    .addColumn('error', 'text')
    .execute();
  await db.schema.createIndex('campaign_spans_run').on('campaign_spans').columns(['run_id', 'started_at']).execute();

  // Research reads the history with a lead's address and domain; without these it scans every message.
  await sql`CREATE INDEX messages_from_key ON messages (lower(from_address))`.execute(db);
  await sql`CREATE INDEX messages_from_domain ON messages (lower(split_part(from_address, '@', 2)))`.execute(db);
  await sql`CREATE INDEX outbound_recipients_address_key ON outbound_recipients (lower(address))`.execute(db);
  await db.schema.createIndex('outbound_recipients_domain').on('outbound_recipients').column('domain').execute();
  // A run's trace gathers the events of its sends, bounces and replies by trace id.
  await db.schema.createIndex('events_trace').on('events').column('trace_id').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const i of ['events_trace', 'outbound_recipients_domain', 'outbound_recipients_address_key', 'messages_from_domain', 'messages_from_key']) await db.schema.dropIndex(i).execute();
  for (const t of ['campaign_spans', 'campaign_replies', 'campaign_sender_usage', 'campaign_sends', 'campaign_runs', 'campaign_leads', 'campaigns']) await db.schema.dropTable(t).execute();
}
