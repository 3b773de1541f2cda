import type { Kysely } from 'kysely';
import { Migrator, type Migration, type MigrationProvider } from 'kysely/migration';
import * as m001 from './migrations/001-core.ts';
import * as m002 from './migrations/002-outbound.ts';
import * as m003 from './migrations/003-limits.ts';
import * as m004 from './migrations/004-security.ts';
import * as m005 from './migrations/005-events.ts';
import * as m006 from './migrations/006-campaigns.ts';
import * as m008 from './migrations/008-inbound-throughput.ts';
import * as m009 from './migrations/009-a2a.ts';
import * as m010 from './migrations/010-drafts.ts';
import * as m011 from './migrations/011-signin-links.ts';
import * as m012 from './migrations/012-sending-stats.ts';

/**
 * The one migration set, for both engines. Listed statically (not read from a folder) so the order
 * is explicit and the list is checked by the type checker. Kysely's migrator takes a lock, so
 * several processes starting together on one PostgreSQL run each migration once.
 */
const MIGRATIONS: Record<string, Migration> = {
  '001-core': m001,
  '002-outbound': m002,
  '003-limits': m003,
  '004-security': m004,
  '005-events': m005,
  '006-campaigns': m006,
  '008-inbound-throughput': m008,
  '009-a2a': m009,
  '010-drafts': m010,
  '011-signin-links': m011,
  '012-sending-stats': m012,
};

const provider: MigrationProvider = { getMigrations: async () => MIGRATIONS };

/** `schema`: where Mailroom's tables (and Kysely's two migration tables) live. */
export async function migrateToLatest(db: Kysely<any>, schema = 'public'): Promise<string[]> {
  // Named explicitly: without it Kysely decides whether its migration tables exist by looking for
  // them in *any* schema of the database, so a second Mailroom schema (or any other Kysely app) in
  // the same database was taken as already set up and start-up failed with `relation
  // "kysely_migration_lock" does not exist` (found by test/crash.test.ts).
  // Unordered: a migration numbered below one already applied (work that landed later, such as
  // 009 after 010) still runs once instead of failing start-up; each one is independent of the others.
  const migrator = new Migrator({ db, provider, migrationTableSchema: schema, allowUnorderedMigrations: true });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw new Error(`database migration failed: ${(error as Error).message ?? error}`, { cause: error });
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
