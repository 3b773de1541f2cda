import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { bulkInsertAll } from '../src/store/bulk.ts';
import { ENGINES, skipEngine, startTestMailroom, type TestMailroom } from './helpers/mailroom.ts';

/**
 * `bulkInsertAll` (store/bulk.ts): several tables' rows in one statement, foreign keys between
 * them holding, each asked-for part answered with its rows as stored (JSON) — and the same
 * answer, one statement per table, when the payload is too large for one.
 */
for (const engine of ENGINES) {
  describe(`${engine}: several bulk inserts in one statement`, { skip: await skipEngine(engine) }, () => {
    let m: TestMailroom;
    let inboxId: string;
    before(async () => {
      m = await startTestMailroom(engine);
      inboxId = (await m.api('POST', '/v1/inboxes', { username: 'bulk' })).body.id;
    });
    after(async () => { await m?.destroy(); });

    const threads = (n: number, at: Date) => Array.from({ length: n }, (_, i) => ({
      id: `thr_bulk_${at.getTime()}_${i}`, inbox_id: inboxId, subject: `s${i}`, message_count: 1, first_message_at: at, last_message_at: at, created_at: at,
    }));

    test('a child and its parent in one statement; rows answered as stored, in order, only for the parts that ask', async () => {
      const at = new Date('2026-12-04T10:00:00.123Z');
      const t = threads(3, at);
      const [parents, refs, events] = await m.store.db.transaction().execute((trx) => bulkInsertAll(trx, [
        { table: 'threads', rows: t, opts: { returning: true } },
        // thread_refs.thread_id references threads: checked at the end of the statement.
        { table: 'thread_refs', rows: t.map((x) => ({ inbox_id: inboxId, ref: `<${x.id}@bulk>`, thread_id: x.id })) },
        { table: 'events', rows: [{ id: `evt_bulk_${at.getTime()}`, type: 'message.queued', created_at: at, inbox_id: inboxId, data: '{"k":[1,2]}' }], opts: { json: ['data'], returning: true } },
      ]));
      assert.deepEqual(parents.map((r) => r.id), t.map((x) => x.id));
      assert.equal(new Date(parents[0].first_message_at as string).toISOString(), at.toISOString());
      assert.deepEqual(refs, []);
      assert.deepEqual(events[0].data, { k: [1, 2] });
      const stored = await m.store.db.selectFrom('thread_refs').select('thread_id').where('ref', 'like', '%@bulk>').orderBy('thread_id').execute();
      assert.deepEqual(stored.map((r) => r.thread_id), t.map((x) => x.id).sort());
    });

    test('a child without its parent fails the statement, and nothing of it stays', async () => {
      const at = new Date('2026-12-04T11:00:00Z');
      await assert.rejects(m.store.db.transaction().execute((trx) => bulkInsertAll(trx, [
        { table: 'threads', rows: threads(1, at) },
        { table: 'thread_refs', rows: [{ inbox_id: inboxId, ref: '<orphan@bulk>', thread_id: 'thr_missing' }] },
      ])), /foreign key/);
      assert.equal((await m.store.db.selectFrom('threads').select('id').where('id', '=', threads(1, at)[0].id).execute()).length, 0);
    });

    test('over the payload limit, one statement per part, answered the same way', async () => {
      const at = new Date('2026-12-04T12:00:00Z');
      const big = 'x'.repeat(5 * 1024 * 1024);
      const rows = [0, 1].map((i) => ({ id: `evt_big_${i}`, type: 'message.queued', created_at: at, inbox_id: inboxId, data: JSON.stringify({ big, i }) }));
      const [events, parents] = await m.store.db.transaction().execute((trx) => bulkInsertAll(trx, [
        { table: 'events', rows, opts: { json: ['data'], returning: true } },
        { table: 'threads', rows: threads(2, at), opts: { returning: true } },
      ]));
      assert.deepEqual(events.map((e) => (e.data as { i: number }).i), [0, 1]);
      assert.equal((events[0].data as { big: string }).big.length, big.length);
      assert.equal(typeof parents[0].created_at, 'string', 'timestamps as JSON, as in one statement');
      assert.equal(new Date(parents[0].created_at as string).toISOString(), at.toISOString());
    });
  });
}
