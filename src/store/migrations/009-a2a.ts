import { sql, type Kysely } from 'kysely';

/**
 * Agent-to-agent email (src/a2a/): `messages.a2a` holds the envelope found in a message's a2a part
 * with the trust decided at receipt (`a2a/format.ts` A2aInfo), null for every other message. A
 * requester waits for the response with its correlation id, so that lookup is indexed per inbox;
 * the index is partial, since almost no mail is a2a.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('messages').addColumn('a2a', 'jsonb').execute();
  await sql`CREATE INDEX messages_a2a_correlation ON messages (inbox_id, (a2a->>'correlation_id')) WHERE a2a IS NOT NULL`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('messages_a2a_correlation').execute();
  await db.schema.alterTable('messages').dropColumn('a2a').execute();
}
