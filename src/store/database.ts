import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { FileBlobStore, TableBlobStore, type BlobStore } from './blobs.ts';
import { migrateToLatest } from './migrate.ts';
import { PGliteThreadDialect } from './pglite-dialect.ts';
import { PGliteThread } from './pglite-thread.ts';
import { prepareMarked } from './prepared.ts';
import type { Database } from './schema.ts';

export type Engine = 'pglite' | 'postgres';

/**
 * The storage layer: one PostgreSQL dialect on two engines. Everything above this file talks to
 * `db` (Kysely) and `blobs`; only this file and jobs/boss.ts know which engine is underneath.
 */
export interface Store {
  engine: Engine;
  db: Kysely<Database>;
  blobs: BlobStore;
  /** Embedded mode: PGlite on its own thread (pg-boss runs on it through its `fromPglite` adapter). */
  pglite?: PGliteThread;
  /** Connection settings for pg-boss in PostgreSQL mode. */
  postgres?: { connectionString: string; schema: string };
  close(): Promise<void>;
}

export interface StoreOptions {
  /** PostgreSQL connection string; when absent the embedded engine is used. */
  databaseUrl?: string;
  /** PostgreSQL schema for Mailroom's tables (tests use one per file). */
  schema?: string;
  /** Embedded: directory for the database and blobs. Omit `pgliteDir` for an in-memory database. */
  dataDir: string;
  pgliteDir?: string | null;
}

export async function openStore(opts: StoreOptions): Promise<Store> {
  // pg parses timestamptz into Date and int8 into string by default; both engines agree on that.
  if (opts.databaseUrl) return openPostgres(opts.databaseUrl, opts.schema ?? 'public');
  return openPglite(opts);
}

async function openPglite(opts: StoreOptions): Promise<Store> {
  const dir = opts.pgliteDir === undefined ? path.join(opts.dataDir, 'pgdata') : opts.pgliteDir;
  if (dir) await mkdir(dir, { recursive: true });
  const pglite = new PGliteThread(dir || null);
  await pglite.waitReady;
  const db = new Kysely<Database>({ dialect: new PGliteThreadDialect(pglite) });
  await migrateToLatest(db);
  // Received raw messages stay in the spool (inbound/spool.ts); receipts say where.
  const ranges = {
    base: opts.dataDir,
    find: async (sha: string) => (await db.selectFrom('receipts').select('raw_ref').where('raw_sha256', '=', sha).where('raw_ref', 'is not', null).limit(1).executeTakeFirst())?.raw_ref ?? null,
  };
  return {
    engine: 'pglite',
    db,
    blobs: new FileBlobStore(path.join(opts.dataDir, 'blobs'), ranges),
    pglite,
    async close() {
      await db.destroy(); // closes the PGlite instance too
    },
  };
}

async function openPostgres(connectionString: string, schema: string): Promise<Store> {
  const pool = new pg.Pool({
    connectionString,
    max: 10,
    // Every connection resolves unqualified names in Mailroom's schema; synchronous_commit stays
    // on (the server default) because a `250` in this mode rests on PostgreSQL's own fsync.
    options: `-c search_path="${schema}" -c synchronous_commit=on`,
  });
  pool.on('error', () => {}); // an idle client's error is reported again on its next use
  pool.on('connect', (client) => prepareMarked(client));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  // Processes starting together on one database would race on CREATE SCHEMA (it is not safe under
  // concurrency even with IF NOT EXISTS) and on the migration table: one session-level advisory
  // lock per schema serialises schema creation and migrations across every starting process.
  const admin = new pg.Client({ connectionString });
  await admin.connect();
  try {
    await admin.query('SELECT pg_advisory_lock(hashtext($1))', [`mailroom:migrate:${schema}`]);
    await admin.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
    // Kysely's migrator looks for its tables with an introspector that lists the tables of *every*
    // schema; a schema dropped by someone else during that scan fails it with 3F000 (seen when test
    // files drop their schemas while others start). That is not about our schema: try again.
    for (let attempt = 1; ; attempt++) {
      try {
        await migrateToLatest(db, schema);
        break;
      } catch (err) {
        const code = ((err as { cause?: { code?: string } }).cause ?? (err as { code?: string })).code;
        if (code !== '3F000' || attempt >= 5) throw err;
        await new Promise((r) => setTimeout(r, 100 * attempt));
      }
    }
  } catch (err) {
    await db.destroy();
    throw err;
  } finally {
    await admin.end(); // ends the session, releasing the advisory lock
  }
  return {
    engine: 'postgres',
    db,
    blobs: new TableBlobStore(db),
    postgres: { connectionString, schema },
    async close() {
      await db.destroy();
    },
  };
}
