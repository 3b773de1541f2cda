import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { ENGINES, skipEngine, startTestMailroom, TEST_DATABASE_URL, waitFor, type TestMailroom } from './helpers/mailroom.ts';
import { deliverOne, message } from './helpers/smtp.ts';
import { openSse } from './helpers/sse.ts';

/**
 * The event log's readers (issue 5, item 1 and 3): pages replayable from any cursor, the SSE stream
 * resumable with Last-Event-ID (no event missed, none twice), and the long-poll wait for a reply.
 */

async function deliver(m: TestMailroom, to: string, subject: string, opts: { from?: string; inReplyTo?: string } = {}): Promise<void> {
  const from = opts.from ?? 'lead@example.com';
  const headers = opts.inReplyTo ? [`In-Reply-To: ${opts.inReplyTo}`, `References: ${opts.inReplyTo}`] : [];
  assert.equal(await deliverOne(m.smtpPort, from, to, message({ from, to, subject, headers, body: `Hello about ${subject}.` })), 250);
}

async function allEvents(m: TestMailroom, query = '', token?: string): Promise<any[]> {
  const out: any[] = [];
  let after = '';
  for (;;) {
    const r = await m.api('GET', `/v1/events?limit=500${query}${after ? `&after=${after}` : ''}`, undefined, token);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    out.push(...r.body.data);
    if (r.body.data.length < 500) return out;
    after = r.body.next_cursor;
  }
}

for (const engine of ENGINES) {
  describe(`${engine}: event log, SSE and wait-for-reply`, { skip: await skipEngine(engine) }, () => {
    let m: TestMailroom;
    before(async () => { m = await startTestMailroom(engine, { MAILROOM_EVENT_POLL_MS: '50' }); });
    after(async () => { await m?.destroy(); });

    test('GET /v1/events pages in order from any cursor or event id, filters by type and inbox, and scopes to the token', async () => {
      const a = (await m.api('POST', '/v1/inboxes', { username: 'ev-a' })).body;
      const b = (await m.api('POST', '/v1/inboxes', { username: 'ev-b' })).body;
      await deliver(m, a.address, 'one');
      await deliver(m, b.address, 'two');
      await waitFor(async () => (await allEvents(m, '&types=message.received')).length >= 2 || null);

      const all = await allEvents(m);
      const created = all.filter((e) => e.type === 'inbox.created').map((e) => e.inbox_id);
      assert.ok(created.includes(a.id) && created.includes(b.id));
      const received = all.filter((e) => e.type === 'message.received');
      assert.deepEqual(received.map((e) => e.inbox_id), [a.id, b.id]);
      assert.equal(received[0].data.from, 'lead@example.com');
      assert.equal(received[0].data.subject, 'one');
      assert.ok(received[0].message_id && received[0].thread_id);

      // Paging two by two from the start walks the same sequence, each event once.
      const paged: string[] = [];
      let cursor = '';
      for (;;) {
        const r = await m.api('GET', `/v1/events?limit=2${cursor ? `&after=${cursor}` : ''}`);
        paged.push(...r.body.data.map((e: any) => e.id));
        if (!r.body.data.length) { assert.equal(r.body.next_cursor, cursor || null, 'an empty page keeps the position'); break; }
        cursor = r.body.next_cursor;
      }
      assert.deepEqual(paged, all.map((e) => e.id));

      // `after` may also be an event id.
      const fromId = (await m.api('GET', `/v1/events?after=${all[0].id}&limit=500`)).body.data.map((e: any) => e.id);
      assert.deepEqual(fromId, all.slice(1).map((e) => e.id));

      const onlyB = await allEvents(m, `&inbox_id=${b.id}`);
      assert.ok(onlyB.length >= 2 && onlyB.every((e) => e.inbox_id === b.id));

      const scoped = (await m.api('POST', '/v1/tokens', { scopes: ['messages:read'], inbox_ids: [a.id] })).body.token;
      const seen = await allEvents(m, '', scoped);
      assert.ok(seen.length >= 2 && seen.every((e) => e.inbox_id === a.id), 'a token limited to inbox A sees only its events');
      assert.equal((await m.api('GET', `/v1/events?inbox_id=${b.id}`, undefined, scoped)).status, 404);
      const noScope = (await m.api('POST', '/v1/tokens', { scopes: ['inboxes:read'] })).body.token;
      assert.equal((await m.api('GET', '/v1/events', undefined, noScope)).body.code, 'insufficient_scope');
      const bad = await m.api('GET', '/v1/events?after=not-a-cursor');
      assert.equal(bad.status, 400);
      assert.equal(bad.body.code, 'invalid_request');
    });

    test('SSE: a client that disconnects and reconnects with Last-Event-ID misses no event and sees none twice, under concurrent writes', async () => {
      const inbox = (await m.api('POST', '/v1/inboxes', { username: 'sse' })).body;
      const startCursor = (await m.api('GET', `/v1/events?inbox_id=${inbox.id}`)).body.next_cursor;
      // Writers: 30 messages arriving while the client drops and reconnects three times.
      const writing = (async () => {
        for (let i = 0; i < 30; i++) await deliver(m, inbox.address, `n${i}`);
      })();
      const seen: string[] = [];
      let last = startCursor;
      for (let round = 0; round < 4; round++) {
        const s = await openSse(`${m.api.base}/v1/events/stream?inbox_id=${inbox.id}&types=message.received`, m.adminToken, last ? { 'last-event-id': last } : {});
        assert.equal(s.status, 200);
        const want = round < 3 ? seen.length + 5 : 30;
        await s.until((_f, all) => all.filter((x) => x.event === 'message.received').length + seen.length >= want, 30_000);
        s.close();
        const got = s.frames.filter((f) => f.event === 'message.received');
        for (const f of got) seen.push(JSON.parse(f.data).id);
        last = got.at(-1)?.id ?? last;
      }
      await writing;
      const dup = seen.filter((x, i) => seen.indexOf(x) !== i);
      assert.equal(seen.length, 30, `thirty events over four connections; repeated: ${dup.join(',')}`);
      assert.equal(new Set(seen).size, 30, 'none twice');
      const log = (await allEvents(m, `&inbox_id=${inbox.id}&types=message.received`)).map((e) => e.id);
      assert.deepEqual(seen, log, 'the same events, in the log order');
    });

    test('SSE without a cursor starts at the head: only new events; frames carry id (cursor), event (type) and the event as data', async () => {
      const inbox = (await m.api('POST', '/v1/inboxes', { username: 'sse-live' })).body;
      await deliver(m, inbox.address, 'old');
      await waitFor(async () => (await allEvents(m, `&inbox_id=${inbox.id}&types=message.received`)).length === 1 || null);
      const s = await openSse(`${m.api.base}/v1/events/stream?inbox_id=${inbox.id}`, m.adminToken);
      await s.until((f) => f.event === 'ready');
      await deliver(m, inbox.address, 'new');
      const f = await s.until((x) => x.event === 'message.received');
      s.close();
      const e = JSON.parse(f.data);
      assert.equal(e.data.subject, 'new');
      assert.equal(f.id, e.cursor);
      assert.equal(s.frames.filter((x) => x.event === 'message.received').length, 1);
      const bad = await openSse(`${m.api.base}/v1/events/stream`, m.adminToken, { 'last-event-id': 'garbage' });
      assert.equal(bad.status, 400);
      bad.close();
    });

    test('wait: returns a reply that arrives during the wait, at once for one that already arrived, null on timeout; thread and sender filters', async () => {
      const inbox = (await m.api('POST', '/v1/inboxes', { username: 'waiter' })).body;
      const t0 = Date.now();
      const waiting = m.api('GET', `/v1/inboxes/${inbox.id}/messages/wait?timeout=20&from=lead@example.com`);
      setTimeout(() => {
        void deliver(m, inbox.address, 'noise', { from: 'other@example.org' })
          .then(() => new Promise((r) => setTimeout(r, 500)))
          .then(() => deliver(m, inbox.address, 'the reply'));
      }, 2000);
      const r = await waiting;
      assert.equal(r.status, 200);
      assert.equal(r.body.message?.subject, 'the reply', 'the sender filter skipped the noise');
      assert.ok(Date.now() - t0 >= 2000, 'it waited for the reply');
      assert.match(r.body.message.text, /Hello about the reply/);

      const since = new Date(t0).toISOString();
      const t1 = Date.now();
      const again = await m.api('GET', `/v1/inboxes/${inbox.id}/messages/wait?timeout=20&since=${encodeURIComponent(since)}&from=@example.org`);
      assert.equal(again.body.message?.subject, 'noise');
      assert.ok(Date.now() - t1 < 5000, 'already there: answered at once');

      const threadId = r.body.message.thread_id;
      const t2 = Date.now();
      const none = await m.api('GET', `/v1/inboxes/${inbox.id}/messages/wait?timeout=1&thread_id=${threadId}`);
      assert.equal(none.status, 200);
      assert.equal(none.body.message, null);
      assert.ok(Date.now() - t2 >= 900);

      const inThread = m.api('GET', `/v1/inboxes/${inbox.id}/messages/wait?timeout=20&thread_id=${threadId}`);
      await new Promise((res) => setTimeout(res, 300));
      await deliver(m, inbox.address, 'unrelated');
      await deliver(m, inbox.address, 'Re: the reply', { inReplyTo: r.body.message.message_id });
      assert.equal((await inThread).body.message?.subject, 'Re: the reply');

      assert.equal((await m.api('GET', '/v1/inboxes/inb_00000000000000000000000000/messages/wait?timeout=1')).status, 404);
    });

    test('search (q) and sender (from) filters on message listings', async () => {
      const inbox = (await m.api('POST', '/v1/inboxes', { username: 'search' })).body;
      await deliver(m, inbox.address, 'Quarterly pricing update', { from: 'ceo@acme.example' });
      await deliver(m, inbox.address, 'Lunch', { from: 'friend@other.example' });
      await waitFor(async () => (await m.api('GET', `/v1/inboxes/${inbox.id}/messages`)).body.data.length === 2 || null);
      const q = (s: string) => m.api('GET', `/v1/inboxes/${inbox.id}/messages?${s}`).then((r) => r.body.data.map((x: any) => x.subject));
      assert.deepEqual(await q('q=pricing'), ['Quarterly pricing update']);
      assert.deepEqual(await q('q=QUARTERLY%20update'), ['Quarterly pricing update']);
      assert.deepEqual(await q('q=acme'), ['Quarterly pricing update'], 'the sender is searched too');
      assert.deepEqual(await q('q=100%25'), [], 'LIKE wildcards are literal');
      assert.deepEqual(await q('from=friend@other.example'), ['Lunch']);
      assert.deepEqual(await q('from=@ACME.example'), ['Quarterly pricing update']);
    });

    test('retention: events older than the window are deleted', async () => {
      const old = new Date(Date.now() - 40 * 86_400_000);
      await m.store.db.insertInto('events').values({ id: 'evt_old', type: 'inbox.created', created_at: old, inbox_id: null, message_id: null, thread_id: null, trace_id: null, data: JSON.stringify({}) } as never).execute();
      assert.ok((await m.feed.prune(new Date(Date.now() - 30 * 86_400_000))) >= 1);
      assert.equal(await m.store.db.selectFrom('events').select('id').where('id', '=', 'evt_old').executeTakeFirst(), undefined);
    });
  });
}

describe('postgres: an event committed late by a slow transaction is not skipped by a reader that moved past later events', { skip: await skipEngine('postgres') }, () => {
  let m: TestMailroom;
  before(async () => { m = await startTestMailroom('postgres'); });
  after(async () => { await m?.destroy(); });

  test('the reader waits for the older transaction, then sees its event after the cursor it already holds', async () => {
    const schema = m.config.databaseSchema;
    const slow = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await slow.connect();
    try {
      await slow.query('BEGIN');
      await slow.query(`INSERT INTO "${schema}".events (id, type, created_at, data) VALUES ('evt_slow', 'inbox.created', now(), '{}')`);
      // A later transaction commits first: a reader paging by id or time would pass evt_slow here.
      const inbox = (await m.api('POST', '/v1/inboxes', { username: 'late' })).body;
      const first = (await m.api('GET', '/v1/events?limit=500')).body;
      assert.ok(!first.data.some((e: any) => e.inbox_id === inbox.id), 'held back while an older transaction is open');
      await slow.query('COMMIT');
      // The log shows an event once every older transaction of the server has ended, and the
      // PostgreSQL server is shared by the test files running in parallel: wait, from the same cursor.
      // Wait for both: another file's transaction that began between the two commits can still hold
      // the later event back after evt_slow shows (seen in CI, where the order check then met -1).
      const rest = await waitFor(async () => {
        const data = (await m.api('GET', `/v1/events?limit=500${first.next_cursor ? `&after=${first.next_cursor}` : ''}`)).body.data as any[];
        return data.some((e) => e.id === 'evt_slow') && data.some((e) => e.inbox_id === inbox.id) ? data : null;
      }, 30_000, 'the slow event and the later one after the cursor the reader holds');
      const slowAt = rest.findIndex((e) => e.id === 'evt_slow');
      const laterAt = rest.findIndex((e) => e.inbox_id === inbox.id);
      assert.ok(slowAt < laterAt, `the slow event (at ${slowAt}) comes before the later one (at ${laterAt})`);
    } finally {
      await slow.end();
    }
  });
});
