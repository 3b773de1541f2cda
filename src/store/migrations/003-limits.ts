import type { Kysely } from 'kysely';

/**
 * Shared sending limits: the policies, and one usage row per admitted recipient send. Usage lives
 * in the database (not in a process) so every agent, token and process draws on the same budget.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('rate_policies')
    .addColumn('id', 'text', (c) => c.primaryKey())
    // global | inbox | domain (sending domain) | recipient_domain
    .addColumn('scope', 'text', (c) => c.notNull())
    // One inbox id / domain, or '*' for "each one separately".
    .addColumn('match', 'text', (c) => c.notNull())
    .addColumn('max', 'integer', (c) => c.notNull())
    .addColumn('window_seconds', 'integer', (c) => c.notNull())
    // Daily caps for a new sending domain: day 1 → warmup[0], … ; `max` applies after the last.
    .addColumn('warmup', 'jsonb')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('rate_usage')
    .addColumn('policy_id', 'text', (c) => c.notNull().references('rate_policies.id').onDelete('cascade'))
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('at', 'timestamptz', (c) => c.notNull())
    .addColumn('message_id', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('rate_usage_window').on('rate_usage').columns(['policy_id', 'key', 'at']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('rate_usage').execute();
  await db.schema.dropTable('rate_policies').execute();
}
