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
    // Received mail: what the inbox's policy decided (delivered, flagged, quarantined, needs_human,
    // released). Quarantined and needs_human messages stay out of default listings until released.
    .addColumn('disposition', 'text')
    // The new part of a reply, without quoted history, signature and forwarded blocks (intel/reply).
    .addColumn('extracted_text', 'text')
    .execute();
  // Per inbox: what to do with received mail whose injection score reaches the threshold.
  await db.schema.alterTable('inboxes')
    .addColumn('injection_action', 'text', (c) => c.notNull().defaultTo('quarantine'))
    .addColumn('injection_threshold', 'real', (c) => c.notNull().defaultTo(0.7))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('messages').dropColumn('security').dropColumn('kind').dropColumn('return_date').dropColumn('kind_evidence').dropColumn('disposition').dropColumn('extracted_text').execute();
  await db.schema.alterTable('inboxes').dropColumn('injection_action').dropColumn('injection_threshold').execute();
}
