import type { Kysely } from 'kysely';

/**
 * GET /v1/stats/sending (the console's bounce-rate chart) reads recipients that reached sent or
 * bounced within a window: without this index every read scans the whole recipients table, which
 * grows with everything ever sent.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex('outbound_recipients_updated').on('outbound_recipients').column('updated_at').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('outbound_recipients_updated').execute();
}
