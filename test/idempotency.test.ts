import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { apiClient, dropSchemas, ENGINES, skipEngine, startTestMailroom, TEST_DATABASE_URL, uniqueSchema, waitFor, type TestMailroom } from './helpers/mailroom.ts';
import { killAllServes, startServe } from './helpers/process.ts';
import { startSink, type Sink } from './helpers/sink.ts';

/**
 * Idempotent sends (issue 3; test plan I1–I3): one key, one message, one delivery — under 50
 * concurrent requests, and across two Mailroom processes sharing PostgreSQL, because the guarantee
 * is a unique index in the database, not a map in memory.
 */

const payload = (n = 1) => ({ to: ['lead@example.net'], subject: `Offer ${n}`, text: 'One copy only, please.' });

async function settle(ms = 1500): Promise<void> {
  // The sink can only be checked for "no second copy" after the queue had time to send one.
  await new Promise((r) => setTimeout(r, ms));
}

for (const engine of ENGINES) {
  describe(`${engine}: idempotent sends`, { skip: await skipEngine(engine) }, () => {
    let m: TestMailroom;
    let sink: Sink;
    let inbox: { id: string };
    before(async () => {
      sink = await startSink({ starttls: false });
      m = await startTestMailroom(engine, { MAILROOM_SMTP_RELAY_URL: `smtp://127.0.0.1:${sink.port}` });
      inbox = (await m.api('POST', '/v1/inboxes', { username: 'idem' })).body;
    });
    after(async () => {
      await m?.destroy();
      await sink?.close();
    });

    test('I1 replay: the same key and body twice → the same message, Idempotent-Replayed, one delivery', async () => {
      const url = `/v1/inboxes/${inbox.id}/messages`;
      const first = await m.api('POST', url, { ...payload(1), idempotency_key: 'k-replay' });
      const second = await m.api('POST', url, { ...payload(1), idempotency_key: 'k-replay' });
      assert.equal(first.status, 202);
      assert.equal(second.status, 202);
      assert.equal(second.body.id, first.body.id);
      assert.equal(second.body.message_id, first.body.message_id);
      assert.equal(second.headers.get('idempotent-replayed'), 'true');
      assert.equal(first.headers.get('idempotent-replayed'), null);
      await sink.waitFor(1);
      await settle();
      assert.equal(sink.messages.filter((x) => x.raw.includes('Offer 1')).length, 1);
    });

    test('I2 mismatch: the same key with a different body → 409 idempotency_key_reused, nothing sent', async () => {
      const url = `/v1/inboxes/${inbox.id}/messages`;
      assert.equal((await m.api('POST', url, { ...payload(2), idempotency_key: 'k-mismatch' })).status, 202);
      const other = await m.api('POST', url, { ...payload(3), idempotency_key: 'k-mismatch' });
      assert.equal(other.status, 409);
      assert.equal(other.body.code, 'idempotency_key_reused');
      await settle();
      assert.equal(sink.messages.filter((x) => x.raw.includes('Offer 3')).length, 0);
    });

    test('I3 concurrent: 50 identical requests with one key (header) → one message id, exactly one delivery', async () => {
      const url = `/v1/inboxes/${inbox.id}/messages`;
      const before = sink.messages.length;
      const results = await Promise.all(Array.from({ length: 50 }, () => fetch(m.api.base + url, {
        method: 'POST',
        headers: { authorization: `Bearer ${m.adminToken}`, 'content-type': 'application/json', 'idempotency-key': 'k-concurrent' },
        body: JSON.stringify(payload(4)),
      }).then(async (r) => ({ status: r.status, body: await r.json() as any }))));
      assert.deepEqual([...new Set(results.map((r) => r.status))], [202], JSON.stringify(results.find((r) => r.status !== 202)?.body));
      assert.equal(new Set(results.map((r) => r.body.id)).size, 1);
      await sink.waitFor(before + 1);
      await settle();
      assert.equal(sink.messages.filter((x) => x.raw.includes('Offer 4')).length, 1);
      const rows = await m.store.db.selectFrom('outbound').select('id').where('idempotency_key', '=', 'k-concurrent').execute();
      assert.equal(rows.length, 1);
    });

    test('dedupe {campaign, intent} without a key: the same recipients + campaign + intent send once; another intent sends', async () => {
      const url = `/v1/inboxes/${inbox.id}/messages`;
      const dedupe = { campaign: 'q3-outreach', intent: 'first-touch' };
      // Different wording (an agent re-generated the draft) is still the same intent: one send.
      const a = await m.api('POST', url, { ...payload(5), dedupe });
      const b = await m.api('POST', url, { ...payload(5), dedupe });
      assert.equal(a.status, 202);
      assert.equal(b.body.id, a.body.id);
      const c = await m.api('POST', url, { ...payload(5), dedupe: { ...dedupe, intent: 'follow-up-1' } });
      assert.equal(c.status, 202);
      assert.notEqual(c.body.id, a.body.id);
    });

    test('A11 a key is per inbox: the same key in another inbox is a different send', async () => {
      const other = (await m.api('POST', '/v1/inboxes', { username: 'idem-other' })).body;
      const a = await m.api('POST', `/v1/inboxes/${inbox.id}/messages`, { ...payload(6), idempotency_key: 'k-shared' });
      const b = await m.api('POST', `/v1/inboxes/${other.id}/messages`, { ...payload(6), idempotency_key: 'k-shared' });
      assert.equal(a.status, 202);
      assert.equal(b.status, 202);
      assert.notEqual(a.body.id, b.body.id);
    });
  });
}

for (const engine of ENGINES) {
  describe(`${engine}: the idempotency window`, { skip: await skipEngine(engine) }, () => {
    let m: TestMailroom;
    before(async () => {
      // A window of about 7 s stands for the 24 h default (long enough that the replay below lands
      // inside it on a loaded machine).
      m = await startTestMailroom(engine, { MAILROOM_IDEMPOTENCY_WINDOW_HOURS: '0.002' });
    });
    after(async () => { await m?.destroy(); });

    test('I4 retention: within the window the key replays; after it, the same key names a new send', async () => {
      const inbox = (await m.api('POST', '/v1/inboxes', { username: 'window' })).body;
      const url = `/v1/inboxes/${inbox.id}/messages`;
      const first = await m.api('POST', url, { ...payload(8), idempotency_key: 'k-window' });
      const replay = await m.api('POST', url, { ...payload(8), idempotency_key: 'k-window' });
      assert.equal(replay.body.id, first.body.id);
      await new Promise((r) => setTimeout(r, 7500));
      const later = await m.api('POST', url, { ...payload(8), idempotency_key: 'k-window' });
      assert.equal(later.status, 202);
      assert.notEqual(later.body.id, first.body.id, 'an expired key is released');
      assert.equal(later.headers.get('idempotent-replayed'), null);
      // The first message keeps its record; the key now names the new one.
      assert.equal((await m.api('GET', `/v1/messages/${first.body.id}`)).body.delivery.idempotency_key, null);
      assert.equal((await m.api('GET', `/v1/messages/${later.body.id}`)).body.delivery.idempotency_key, 'k-window');
    });
  });
}

describe('postgres: one idempotency key across two Mailroom processes', { skip: ENGINES.includes('postgres') ? await skipEngine('postgres') : 'postgres not selected' }, () => {
  const schema = uniqueSchema();
  const dirs: string[] = [];
  let sink: Sink;
  const token = 'test-admin-token-for-two-processes-0000';
  let ports: number[] = [];
  before(async () => {
    sink = await startSink({ starttls: false });
    const env = async () => {
      const dir = await mkdtemp(path.join(tmpdir(), 'mailroom-idem-'));
      dirs.push(dir);
      return {
        MAILROOM_DATA_DIR: dir, MAILROOM_HTTP_PORT: '0', MAILROOM_SMTP_PORT: '0', MAILROOM_DOMAIN: 'mailroom.test',
        DATABASE_URL: TEST_DATABASE_URL, MAILROOM_DATABASE_SCHEMA: schema, MAILROOM_ADMIN_TOKEN: token,
        MAILROOM_SMTP_RELAY_URL: `smtp://127.0.0.1:${sink.port}`, MAILROOM_LOG_LEVEL: 'warn',
      };
    };
    const procs = await Promise.all([startServe(await env()), startServe(await env())]);
    ports = procs.map((p) => p.httpPort);
  });
  after(async () => {
    await killAllServes();
    await sink?.close();
    await dropSchemas(schema);
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  test('I3 across processes: 50 concurrent requests split over two processes → one message, one delivery', async () => {
    const [a, b] = ports.map((p) => apiClient(`http://127.0.0.1:${p}`, token));
    const inbox = (await a('POST', '/v1/inboxes', { username: 'fleet' })).body;
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2 ? a : b)('POST', `/v1/inboxes/${inbox.id}/messages`, { ...payload(7), idempotency_key: 'fleet-key' })));
    assert.deepEqual([...new Set(results.map((r) => r.status))], [202], JSON.stringify(results.find((r) => r.status !== 202)?.body));
    assert.equal(new Set(results.map((r) => r.body.id)).size, 1, 'every request got the one message');
    await sink.waitFor(1);
    await settle(3000);
    assert.equal(sink.messages.length, 1, 'exactly one delivery at the sink');
    const status = await waitFor(async () => {
      const r = await b('GET', `/v1/messages/${results[0].body.id}`);
      return r.body.delivery?.status === 'sent' ? r.body : null;
    }, 20_000, 'the message to be sent');
    assert.equal(status.delivery.recipients.length, 1);
  });
});
