import type { Kysely } from 'kysely';

/**
 * What Mailroom can tell an agent about a received message: `security.auth` (later the injection
 * score), and its kind (human, auto_reply, out_of_office…) with the evidence and a return date.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('messages')
    .addColumn('security', 'jsonb')
    .addColumn('kind', 'text')
    .addColumn('return_date', 'text')
    .addColumn('kind_evidence', 'jsonb')
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('messages').dropColumn('security').dropColumn('kind').dropColumn('return_date').dropColumn('kind_evidence').execute();
}
