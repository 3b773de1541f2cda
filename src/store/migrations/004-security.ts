import type { Kysely } from 'kysely';

/** What Mailroom can tell an agent about a received message: `security.auth` (and later the injection score). */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('messages').addColumn('security', 'jsonb').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('messages').dropColumn('security').execute();
}
