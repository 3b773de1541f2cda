import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { loadConfig } from '../src/config/config.ts';
import { createLogger } from '../src/log.ts';
import { startMailroom, type Mailroom } from '../src/server.ts';
import { ChangeListener, changeNotice } from '../src/store/change-notices.ts';
import { SharedCache } from '../src/store/shared-cache.ts';
import { apiClient, dropSchemas, skipEngine, testEnv, TEST_DATABASE_URL, uniqueSchema, waitFor, type ApiClient } from './helpers/mailroom.ts';

/**
 * On PostgreSQL every process caches tokens and inbox rows (every request reads both) and hears
 * the others' changes through LISTEN/NOTIFY (store/change-notices.ts, store/shared-cache.ts).
 * Embedded there is one process, and its caches are covered by the API tests.
 */
const skip = await skipEngine('postgres');

describe('postgres: a change made through one process reaches the caches of another', { skip }, () => {
  const schema = uniqueSchema();
  const dirs: string[] = [];
  const nodes: Mailroom[] = [];
  let a: ApiClient;
  let b: ApiClient;
  before(async () => {
    for (let i = 0; i < 2; i++) {
      const dir = await mkdtemp(path.join(tmpdir(), 'mailroom-notices-'));
      dirs.push(dir);
      nodes.push(await startMailroom(loadConfig(testEnv('postgres', dir, schema)), { log: createLogger('silent') }));
    }
    const admin = nodes[0].createdAdminToken!;
    [a, b] = nodes.map((n) => apiClient(`http://127.0.0.1:${n.httpPort}`, admin));
  });
  after(async () => {
    for (const n of nodes) await n.stop();
    await dropSchemas(schema);
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  test('a token revoked on one node is refused by the other, which had it cached', async () => {
    const t = (await a('POST', '/v1/tokens', { scopes: ['inboxes:read'] })).body;
    // Used twice on node b: the second answer comes from its cache.
    for (let i = 0; i < 2; i++) assert.equal((await b('GET', '/v1/inboxes', undefined, t.token)).status, 200);
    assert.equal((await a('DELETE', `/v1/tokens/${t.id}`)).status, 200);
    await waitFor(async () => (await b('GET', '/v1/inboxes', undefined, t.token)).status === 401, 5_000, 'node b refusing the revoked token');
    // And it stays refused (no stale row stored back by a read that raced the notice).
    for (let i = 0; i < 3; i++) assert.equal((await b('GET', '/v1/inboxes', undefined, t.token)).status, 401);
  });

  test('an inbox changed or deleted on one node is seen so by the other, which had it cached', async () => {
    const inbox = (await a('POST', '/v1/inboxes', { username: 'noticed', display_name: 'Before' })).body;
    for (let i = 0; i < 2; i++) assert.equal((await b('GET', `/v1/inboxes/${inbox.id}`)).body.display_name, 'Before');
    assert.equal((await a('PATCH', `/v1/inboxes/${inbox.id}`, { display_name: 'After' })).status, 200);
    await waitFor(async () => (await b('GET', `/v1/inboxes/${inbox.id}`)).body.display_name === 'After', 5_000, 'node b reading the new name');

    assert.equal((await a('DELETE', `/v1/inboxes/${inbox.id}`)).status, 204);
    await waitFor(async () => (await b('GET', `/v1/inboxes/${inbox.id}`)).status === 404, 5_000, 'node b no longer finding the inbox');
    const send = await b('POST', `/v1/inboxes/${inbox.id}/messages`, { to: ['someone@example.com'], subject: 'after delete', text: 'x' });
    assert.equal(send.status, 404, 'no send from a deleted inbox');
    assert.equal(send.body.error?.code ?? send.body.code, 'not_found');
  });
});

describe('postgres: the change listener and the shared cache', { skip }, () => {
  const schema = uniqueSchema();
  let pool: pg.Pool;
  let db: Kysely<any>;
  let listener: ChangeListener;
  type Row = { id: string };
  let cache: SharedCache<Row>;

  before(async () => {
    pool = new pg.Pool({ connectionString: TEST_DATABASE_URL, options: `-c search_path="${schema}"` });
    db = new Kysely({ dialect: new PostgresDialect({ pool }) });
    await sql`CREATE SCHEMA ${sql.id(schema)}`.execute(db);
    listener = new ChangeListener({ connectionString: TEST_DATABASE_URL, schema }, createLogger('silent'));
    cache = new SharedCache<Row>({ max: 100, notices: listener, topic: 'token', idOf: (r) => r.id });
    await listener.start();
    assert.equal(listener.live, true);
  });
  after(async () => {
    await listener?.close();
    await db?.destroy();
    await dropSchemas(schema);
  });

  const notify = (topic: 'token' | 'inbox', id: string) => sql`SELECT ${changeNotice(topic, id)}`.execute(db);

  test('a notice arrives when its transaction commits, never from one rolled back; another topic leaves entries alone', async () => {
    cache.set('hash-1', { id: 'tok_1' }, cache.stamp());
    assert.deepEqual(cache.get('hash-1'), { id: 'tok_1' });

    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(`SELECT pg_notify('mailroom_changes_' || md5(current_schema()), 'token:tok_1')`);
      await client.query('ROLLBACK');
      await client.query('BEGIN');
      await client.query(`SELECT pg_notify('mailroom_changes_' || md5(current_schema()), 'token:tok_1')`);
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(cache.get('hash-1'), { id: 'tok_1' }, 'kept while the change is not committed (and after the rollback)');
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    await waitFor(async () => cache.get('hash-1') === undefined, 5_000, 'the entry dropped once the change committed');

    cache.set('hash-2', { id: 'tok_2' }, cache.stamp());
    const epoch = listener.epoch;
    await notify('inbox', 'tok_2');
    await waitFor(async () => listener.epoch > epoch, 5_000, 'the inbox notice');
    assert.deepEqual(cache.get('hash-2'), { id: 'tok_2' }, 'an inbox notice does not drop a token entry');
  });

  test('a row read before a notice arrived is not stored after it', async () => {
    const stamp = cache.stamp();
    // The fill read the old row here; meanwhile another process commits a change to it.
    await notify('token', 'tok_3');
    await waitFor(async () => listener.epoch !== stamp, 5_000, 'the notice');
    cache.set('hash-3', { id: 'tok_3' }, stamp);
    assert.equal(cache.get('hash-3'), undefined, 'the possibly stale row was not kept');
    cache.set('hash-3', { id: 'tok_3' }, cache.stamp());
    assert.deepEqual(cache.get('hash-3'), { id: 'tok_3' }, 'a fill after the notice is kept');
  });

  test('while the listening connection is down the cache answers and keeps nothing; back, it starts empty and hears again', async () => {
    cache.set('hash-4', { id: 'tok_4' }, cache.stamp());
    const killed = await sql<{ n: number }>`SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
      WHERE application_name = 'mailroom-change-notices' AND query = ${`LISTEN "mailroom_changes_${await channelHash(db)}"`}`.execute(db);
    assert.equal(killed.rows[0].n, 1, 'the listener connection was found and terminated');
    await waitFor(async () => !listener.live, 5_000, 'the listener noticing the loss');
    assert.equal(cache.get('hash-4'), undefined);
    cache.set('hash-5', { id: 'tok_5' }, cache.stamp());
    assert.equal(cache.get('hash-5'), undefined, 'nothing kept while notices may be missed');

    await waitFor(async () => listener.live, 10_000, 'the listener back');
    assert.equal(cache.size, 0, 'everything cached before the loss is gone');
    cache.set('hash-6', { id: 'tok_6' }, cache.stamp());
    assert.deepEqual(cache.get('hash-6'), { id: 'tok_6' });
    await notify('token', 'tok_6');
    await waitFor(async () => cache.get('hash-6') === undefined, 5_000, 'a notice heard on the new connection');
  });
});

describe('postgres: a listening connection that goes silent is noticed by the heartbeat', { skip }, () => {
  test('notices stop arriving without an error (a black-holed connection): the caches go off, then a new connection brings them back', async () => {
    const schema = uniqueSchema();
    const pool = new pg.Pool({ connectionString: TEST_DATABASE_URL, options: `-c search_path="${schema}"` });
    const db = new Kysely<any>({ dialect: new PostgresDialect({ pool }) });
    const proxy = await startProxy(new URL(TEST_DATABASE_URL));
    const viaProxy = new URL(TEST_DATABASE_URL);
    viaProxy.host = `127.0.0.1:${proxy.port}`;
    const listener = new ChangeListener({ connectionString: viaProxy.toString(), schema }, createLogger('silent'), { heartbeatMs: 200, heartbeatTimeoutMs: 600 });
    const cache = new SharedCache<{ id: string }>({ max: 10, notices: listener, topic: 'inbox', idOf: (r) => r.id });
    try {
      await sql`CREATE SCHEMA ${sql.id(schema)}`.execute(db);
      await listener.start();
      assert.equal(listener.live, true);
      // A few heartbeats pass while the connection works: it stays live.
      await new Promise((r) => setTimeout(r, 800));
      assert.equal(listener.live, true, 'healthy heartbeats keep it live');
      cache.set('inb_1', { id: 'inb_1' }, cache.stamp());

      proxy.blackhole(true); // bytes vanish both ways; no FIN, no RST, no error
      await waitFor(async () => !listener.live, 5_000, 'the heartbeat to notice the silence');
      assert.equal(cache.get('inb_1'), undefined, 'nothing served while notices may be missed');

      proxy.blackhole(false); // the silent connection is gone; new ones pass again
      await waitFor(async () => listener.live, 10_000, 'a new listening connection');
      cache.set('inb_2', { id: 'inb_2' }, cache.stamp());
      await sql`SELECT ${changeNotice('inbox', 'inb_2')}`.execute(db);
      await waitFor(async () => cache.get('inb_2') === undefined, 5_000, 'a notice heard on the new connection');
    } finally {
      await listener.close();
      await proxy.close();
      await db.destroy();
      await dropSchemas(schema);
    }
  });
});

/** A TCP relay to PostgreSQL that can be told to drop every byte silently (a network partition). */
async function startProxy(target: URL): Promise<{ port: number; blackhole(on: boolean): void; close(): Promise<void> }> {
  let hole = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => { sockets.delete(s); client.destroy(); upstream.destroy(); });
    }
    // A connection made during the partition never gets through; one made after it does.
    const born = hole;
    client.on('data', (d) => { if (!hole && !born) upstream.write(d); });
    upstream.on('data', (d) => { if (!hole && !born) client.write(d); });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    blackhole(on) { hole = on; },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

async function channelHash(db: Kysely<any>): Promise<string> {
  return (await sql<{ h: string }>`SELECT md5(current_schema()) AS h`.execute(db)).rows[0].h;
}
