import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ENGINES, skipEngine, startTestMailroom, waitFor, type TestMailroom } from './helpers/mailroom.ts';
import { startDns, type TestDns } from './helpers/dns.ts';
import { startLostReplyProxy, type LostReplyProxy } from './helpers/lost-reply-proxy.ts';
import { headerOf } from './helpers/smtp.ts';
import { startSink, type Sink } from './helpers/sink.ts';

/**
 * I7 "Lost 250": the remote server accepts a message and its reply never reaches Mailroom (a proxy
 * in front of the server drops the connection instead of passing the 250). Mailroom cannot know
 * whether the message was delivered: the attempt is recorded as of unknown outcome (duplicate
 * risk, counted in the sending stats), retried within the retry policy, and the copies that reach
 * the server are at most two, with one Message-ID. On direct MX, such an attempt does not go on to
 * the next MX host in the same attempt (that would make the second copy certain).
 */
const delivery = async (m: TestMailroom, id: string, status: string) =>
  waitFor(async () => {
    const r = await m.api('GET', `/v1/messages/${id}`);
    return r.body.delivery?.status === status ? r.body.delivery : null;
  }, 30_000, `message ${id} ${status}`);

const eventsOf = (m: TestMailroom, id: string) =>
  m.store.db.selectFrom('events').select(['type', 'data']).where('message_id', '=', id).orderBy('created_at').orderBy('id').execute();

const riskToday = async (m: TestMailroom) => {
  const r = await m.api('GET', '/v1/stats/sending?bucket=day');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return (r.body.data as { duplicate_risk: number }[]).reduce((n, b) => n + b.duplicate_risk, 0);
};

for (const engine of ENGINES) {
  describe(`${engine}: I7 a reply lost after the message was transmitted`, { skip: await skipEngine(engine) }, () => {
    let m: TestMailroom;
    /** Without a relay: direct MX (the route is per server, relay or MX). */
    let mm: TestMailroom;
    let relay: Sink;
    let proxy: LostReplyProxy;
    let mx1: Sink;
    let mx1Proxy: LostReplyProxy;
    let mx2: Sink;
    let dns: TestDns;
    let inbox: { id: string; address: string };
    before(async () => {
      // STARTTLS off: the proxy reads the client's commands to find the end of data.
      relay = await startSink({ starttls: false });
      proxy = await startLostReplyProxy({ port: relay.port }, { lose: 1 });
      // Direct MX: mx1 (preferred) behind a proxy that loses one reply, mx2 on 127.0.0.2 at the same port.
      mx1 = await startSink({ starttls: false });
      mx1Proxy = await startLostReplyProxy({ port: mx1.port }, { lose: 1 });
      mx2 = await startSink({ starttls: false, host: '127.0.0.2', port: mx1Proxy.port });
      dns = await startDns();
      dns.set('lossy.example', [{ type: 'MX', exchange: 'mx1.lossy.example', priority: 10 }, { type: 'MX', exchange: 'mx2.lossy.example', priority: 20 }]);
      dns.set('mx1.lossy.example', [{ type: 'A', address: '127.0.0.1' }]);
      dns.set('mx2.lossy.example', [{ type: 'A', address: '127.0.0.2' }]);
      m = await startTestMailroom(engine, { MAILROOM_SMTP_RELAY_URL: `smtp://127.0.0.1:${proxy.port}`, MAILROOM_SEND_RETRY_BASE_SECONDS: '1' });
      inbox = (await m.api('POST', '/v1/inboxes', { username: 'lossy' })).body;
      mm = await startTestMailroom(engine, { MAILROOM_DNS_SERVERS: dns.server, MAILROOM_MX_PORT: String(mx1Proxy.port), MAILROOM_SEND_RETRY_BASE_SECONDS: '1' });
    });
    after(async () => {
      await m?.destroy();
      await mm?.destroy();
      for (const c of [proxy, relay, mx1Proxy, mx1, mx2, dns]) await c?.close();
    });

    test('I7 relay: the lost 250 defers with duplicate risk (event, stats), the retry sends; at most two copies, one Message-ID', async () => {
      const risk0 = await riskToday(m);
      const r = await m.api('POST', `/v1/inboxes/${inbox.id}/messages`, { to: 'lead@example.org', subject: 'lost reply', text: 'hello' });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      const sent = await delivery(m, r.body.id, 'sent');
      assert.equal(proxy.lost, 1, 'the first attempt lost its reply');
      assert.equal(sent.recipients[0].attempts, 2);
      const copies = relay.messages.filter((g) => g.to.includes('lead@example.org'));
      assert.equal(copies.length, 2, 'the relay accepted the message twice: the lost reply made Mailroom retry');
      assert.equal(new Set(copies.map((c) => headerOf(c.raw, 'Message-ID'))).size, 1, 'both copies carry one Message-ID');
      assert.equal(headerOf(copies[0].raw, 'Message-ID'), r.body.message_id);
      const events = await eventsOf(m, r.body.id);
      assert.deepEqual(events.map((e) => e.type), ['message.queued', 'message.deferred', 'message.sent']);
      const deferred = events[1].data as Record<string, unknown>;
      assert.equal(deferred.duplicate_risk, true);
      assert.match(String(deferred.response), /no reply after the message was transmitted.*may have been delivered/);
      assert.equal(await riskToday(m), risk0 + 1, 'the sending stats count the attempt of unknown outcome');
    });

    test('I7 a reply that never comes before the data (a refused connection) is an ordinary deferral, without duplicate risk', async () => {
      await proxy.close();
      const r = await m.api('POST', `/v1/inboxes/${inbox.id}/messages`, { to: 'other@example.org', subject: 'no relay', text: 'hello' });
      const deferred = await delivery(m, r.body.id, 'deferred');
      assert.doesNotMatch(deferred.recipients[0].response, /may have been delivered/);
      const deferredEvent = (await eventsOf(m, r.body.id)).find((e) => e.type === 'message.deferred');
      assert.ok(deferredEvent);
      assert.equal((deferredEvent.data as Record<string, unknown>).duplicate_risk, undefined);
    });

    test('I7 direct MX: the host that lost its reply is not followed by the next MX host in the same attempt; the retry delivers', async () => {
      const sender = (await mm.api('POST', '/v1/inboxes', { username: 'direct' })).body;
      const r = await mm.api('POST', `/v1/inboxes/${sender.id}/messages`, { to: 'buyer@lossy.example', subject: 'lost reply at the MX', text: 'hello' });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      const sent = await delivery(mm, r.body.id, 'sent');
      assert.equal(mx1Proxy.lost, 1);
      assert.equal(sent.recipients[0].transport, 'mx');
      assert.equal(mx2.messages.length, 0, 'never handed to the second MX host');
      const copies = mx1.messages.filter((g) => g.to.includes('buyer@lossy.example'));
      assert.equal(copies.length, 2);
      assert.equal(new Set(copies.map((c) => headerOf(c.raw, 'Message-ID'))).size, 1);
      const deferred = (await eventsOf(mm, r.body.id)).find((e) => e.type === 'message.deferred');
      assert.equal((deferred?.data as Record<string, unknown>)?.duplicate_risk, true);
    });
  });
}
