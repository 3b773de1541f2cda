import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { openStore, type Store } from '../src/store/database.ts';

/**
 * The embedded engine's Kysely driver (store/pglite-dialect.ts) gives every caller its own
 * connection, so statements are posted to the database thread without waiting for each other.
 * What must still hold is what the one-connection dialect gave: a statement outside a
 * transaction never runs inside another caller's open transaction, and transactions never
 * interleave. PGlite-only by nature (PostgreSQL has real connections).
 */
describe('pglite: one connection per caller over the database thread', () => {
  let store: Store;
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mr-dialect-'));
    store = await openStore({ dataDir: dir, pgliteDir: null });
    await sql`CREATE TABLE t (n int)`.execute(store.db);
  });
  after(async () => {
    await store?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const count = async () => Number((await sql<{ n: string }>`SELECT count(*) AS n FROM t`.execute(store.db)).rows[0].n);

  test('a statement outside a transaction waits for the open one and never runs inside it', async () => {
    let outside!: Promise<number>;
    await assert.rejects(store.db.transaction().execute(async (trx) => {
      await sql`INSERT INTO t VALUES (1)`.execute(trx);
      // Posted while the transaction holds the database: inside it, it would count the row.
      outside = count();
      await new Promise((r) => setTimeout(r, 50));
      throw new Error('roll back');
    }), /roll back/);
    assert.equal(await outside, 0, 'the rolled-back row was never visible outside');
    await store.db.transaction().execute(async (trx) => {
      await sql`INSERT INTO t VALUES (2)`.execute(trx);
      outside = count();
    });
    assert.equal(await outside, 1, 'the read ran after the commit');
  });

  test('concurrent transactions do not interleave: each sees only its own and the committed rows', async () => {
    await sql`DELETE FROM t`.execute(store.db);
    const seen = await Promise.all(Array.from({ length: 8 }, (_, i) => store.db.transaction().execute(async (trx) => {
      const before = Number((await sql<{ n: string }>`SELECT count(*) AS n FROM t`.execute(trx)).rows[0].n);
      await new Promise((r) => setTimeout(r, 5)); // give the others every chance to cut in
      await sql`INSERT INTO t VALUES (${i})`.execute(trx);
      const afterInsert = Number((await sql<{ n: string }>`SELECT count(*) AS n FROM t`.execute(trx)).rows[0].n);
      return [before, afterInsert];
    })));
    // Serialised: the k-th transaction to run saw k-1 committed rows, then its own one more.
    assert.deepEqual(seen.map(([b]) => b).sort(), [0, 1, 2, 3, 4, 5, 6, 7]);
    for (const [b, a] of seen) assert.equal(a, b + 1);
    assert.equal(await count(), 8);
  });

  test('a failed statement fails its transaction alone; the next caller proceeds', async () => {
    const bad = store.db.transaction().execute(async (trx) => {
      await sql`INSERT INTO t VALUES (100)`.execute(trx);
      await sql`SELECT * FROM no_such_table`.execute(trx);
    });
    const good = store.db.transaction().execute(async (trx) => {
      await sql`INSERT INTO t VALUES (200)`.execute(trx);
    });
    await assert.rejects(bad, /no_such_table/);
    await good;
    const rows = (await sql<{ n: number }>`SELECT n FROM t WHERE n >= 100 ORDER BY n`.execute(store.db)).rows;
    assert.deepEqual(rows.map((r) => r.n), [200]);
  });
});
