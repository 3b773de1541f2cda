import type { Kysely } from 'kysely';

/**
 * One-time sign-in links for the operator console (issue 8). Only the sha256 of a link's code is
 * stored, as for tokens; `used_at` set by a conditional UPDATE makes a link work once even when
 * several processes share the database.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('signin_links')
    .addColumn('id', 'text', (c) => c.primaryKey()) // sil_<ulid>
    .addColumn('hash', 'text', (c) => c.notNull().unique())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('used_at', 'timestamptz')
    .addColumn('token_id', 'text') // the token the link was exchanged for
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('signin_links').execute();
}
