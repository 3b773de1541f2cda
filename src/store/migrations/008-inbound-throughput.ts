import { sql, type Kysely } from 'kysely';

/**
 * Embedded mode keeps received raw messages where the spool wrote them (inbound/spool.ts: the
 * segment's `raw/` name) instead of copying each into a blob file: `receipts.raw_ref` says where
 * (`spool/raw/seg-N:offset:length`, relative to the data directory). The blob store finds a raw
 * by its sha256 through the partial index (store/blobs.ts). Null for raws stored as blobs
 * (PostgreSQL, and every receipt written before this migration).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('receipts').addColumn('raw_ref', 'text').execute();
  await db.schema.createIndex('receipts_raw_ref').on('receipts').column('raw_sha256').where(sql.ref('raw_ref'), 'is not', null).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('receipts_raw_ref').execute();
  await db.schema.alterTable('receipts').dropColumn('raw_ref').execute();
}
