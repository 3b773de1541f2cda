import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ENGINES, skipEngine, startTestMailroom, waitFor, type TestMailroom } from './helpers/mailroom.ts';
import { startDns, type TestDns } from './helpers/dns.ts';
import { startSink, type Sink } from './helpers/sink.ts';

/**
 * Auto-throttle (issue 3): when a sending domain's bounce rate over the window passes the
 * threshold (here 5 % over at least 20 sends), sending from it pauses with a domain.throttled event;
 * queued mail is held, not dropped, and goes out once an operator resumes the domain.
 */
for (const engine of ENGINES) {
  describe(`${engine}: bounce-rate auto-throttle`, { skip: await skipEngine(engine) }, () => {
    let m: TestMailroom;
    let mx: Sink;
    let dns: TestDns;
    before(async () => {
      mx = await startSink({ rcpt: (a) => (a.startsWith('bad') ? { code: 550, message: '5.1.1 User unknown' } : null) });
      dns = await startDns();
      dns.set('example.net', [{ type: 'MX', exchange: 'mx.example.net', priority: 10 }]);
      dns.set('mx.example.net', [{ type: 'A', address: '127.0.0.1' }]);
      m = await startTestMailroom(engine, {
        MAILROOM_DNS_SERVERS: dns.server, MAILROOM_MX_PORT: String(mx.port),
        MAILROOM_BOUNCE_RATE_MIN_SENDS: '20', MAILROOM_THROTTLE_RECHECK_SECONDS: '1',
      });
    });
    after(async () => {
      await m?.destroy();
      await mx?.close();
      await dns?.close();
    });

    const statusOf = async (id: string) => (await m.api('GET', `/v1/messages/${id}`)).body.delivery.status;

    test('2 hard bounces in 20 sends (10 % > 5 %) pause the domain; queued mail waits; resume sends it', async () => {
      const inbox = (await m.api('POST', '/v1/inboxes', { username: 'bulk' })).body;
      const send = async (to: string) => (await m.api('POST', `/v1/inboxes/${inbox.id}/messages`, { to, subject: `to ${to}`, text: 'x' })).body.id as string;
      const good = await Promise.all(Array.from({ length: 18 }, (_, i) => send(`good${i}@example.net`)));
      for (const id of good) await waitFor(async () => (await statusOf(id)) === 'sent', 20_000, 'sent');
      let domain = (await m.api('GET', '/v1/domains/mailroom.test')).body;
      assert.equal(domain.paused_at, null);
      for (const to of ['bad1@example.net', 'bad2@example.net']) {
        const id = await send(to);
        await waitFor(async () => (await statusOf(id)) === 'bounced', 20_000, 'bounced');
      }
      domain = (await m.api('GET', '/v1/domains/mailroom.test')).body;
      assert.ok(domain.paused_at, 'the domain is paused');
      assert.match(domain.pause_reason, /10\.0 %.*2 of 20/);
      const ev = await m.store.db.selectFrom('events').selectAll().where('type', '=', 'domain.throttled').execute();
      assert.equal(ev.length, 1);
      assert.equal((ev[0].data as any).domain, 'mailroom.test');

      const before = mx.messages.length;
      const held = await send('later@example.net');
      await new Promise((r) => setTimeout(r, 2500));
      assert.equal(mx.messages.length, before, 'nothing leaves a paused domain');
      assert.equal(await statusOf(held), 'queued', 'held, not dropped');

      const resumed = await m.api('POST', '/v1/domains/mailroom.test/resume');
      assert.equal(resumed.status, 200);
      assert.equal(resumed.body.paused_at, null);
      await waitFor(async () => (await statusOf(held)) === 'sent', 20_000, 'the held message to be sent after resume');
      assert.equal((await m.store.db.selectFrom('events').select('id').where('type', '=', 'domain.resumed').execute()).length, 1);
    });
  });
}
