import assert from 'node:assert/strict';
import { after, before, describe, mock, test } from 'node:test';
import { ENGINES, skipEngine, startTestMailroom, waitFor, type TestMailroom } from './helpers/mailroom.ts';
import { startDns, type TestDns } from './helpers/dns.ts';
import { maxInAnyWindow, startSink, type Sink } from './helpers/sink.ts';
import { Limits } from '../src/outbound/limits.ts';

/**
 * Shared rate limits (issue 3): budgets held in the database and enforced before a message reaches
 * a transport, shared by every agent and token; excess waits, it is never dropped. The acceptance
 * test runs on a scaled clock: a 3-second window stands for the minute (60 messages at 10/min would
 * take six real minutes); the mechanism does not know the difference.
 */
const WINDOW_S = 3;
const MAX = 10;

for (const engine of ENGINES) {
  describe(`${engine}: shared rate limits`, { skip: await skipEngine(engine) }, () => {
    let m: TestMailroom;
    let mx: Sink;
    let dns: TestDns;
    before(async () => {
      mx = await startSink();
      dns = await startDns();
      for (const d of ['example.net', 'example.org']) {
        dns.set(d, [{ type: 'MX', exchange: `mx.${d}`, priority: 10 }]);
        dns.set(`mx.${d}`, [{ type: 'A', address: '127.0.0.1' }]);
      }
      m = await startTestMailroom(engine, { MAILROOM_DNS_SERVERS: dns.server, MAILROOM_MX_PORT: String(mx.port) });
    });
    after(async () => {
      await m?.destroy();
      await mx?.close();
      await dns?.close();
    });

    test(`${MAX} per window on a recipient domain, 5 agents × 12 messages: never more than ${MAX} in any window at the sink, none lost, all sent`, async () => {
      const policy = await m.api('POST', '/v1/limits', { scope: 'recipient_domain', match: 'example.net', max: MAX, window_seconds: WINDOW_S });
      assert.equal(policy.status, 201, JSON.stringify(policy.body));
      // Five agents, each with its own inbox and a token restricted to it: the budget is shared anyway.
      const agents = await Promise.all(Array.from({ length: 5 }, async (_, i) => {
        const inbox = (await m.api('POST', '/v1/inboxes', { username: `agent${i}` })).body;
        const token = (await m.api('POST', '/v1/tokens', { scopes: ['messages:send', 'messages:read'], inbox_ids: [inbox.id] })).body.token;
        return { inbox, token };
      }));
      const before = mx.messages.length;
      const ids = (await Promise.all(agents.map(({ inbox, token }, a) => Promise.all(Array.from({ length: 12 }, async (_, k) => {
        const r = await m.api('POST', `/v1/inboxes/${inbox.id}/messages`, { to: `lead${a}-${k}@example.net`, subject: `limited ${a}-${k}`, text: 'x' }, token);
        assert.equal(r.status, 202, JSON.stringify(r.body));
        return r.body.id as string;
    }))))).flat();
      const got = (await mx.waitFor(before + 60, 90_000)).slice(before);
      const times = got.filter((g) => g.to[0].endsWith('@example.net')).map((g) => g.at);
      assert.equal(times.length, 60, 'all 60 arrived');
      const peak = maxInAnyWindow(times, WINDOW_S * 1000);
      const span = (Math.max(...times) - Math.min(...times)) / 1000;
      console.log(`  ${engine} limits: ${JSON.stringify({ peak, spanSeconds: span })}`);
      assert.ok(peak <= MAX, `${peak} messages arrived within one ${WINDOW_S}s window`);
      assert.ok(span >= (60 / MAX - 1) * WINDOW_S, `60 messages at ${MAX}/${WINDOW_S}s cannot arrive in ${span}s`);
      assert.equal(new Set(got.map((g) => g.to[0])).size, 60, 'each recipient exactly once');
      for (const id of ids) {
        const d = await waitFor(async () => { const r = await m.api('GET', `/v1/messages/${id}`); return r.body.delivery?.status === 'sent' ? r.body.delivery : null; }, 20_000, `${id} sent`);
        assert.equal(d.recipients[0].attempts, 1, 'a rate-limited wait is not a failed attempt');
      }
      const deferredByLimit = await m.store.db.selectFrom('events').select('data').where('type', '=', 'message.deferred').execute();
      assert.ok(deferredByLimit.some((e) => (e.data as any).reason === 'rate_limited'), 'waits are visible as message.deferred (rate_limited) events');
      assert.equal((await m.api('DELETE', `/v1/limits/${policy.body.id}`)).status, 204);
    });

    test('a send still in flight counts in the window until it is answered: a delivery slower than the window does not let the next sends in beside it', async () => {
      // 2 per 2 s. The first two deliveries take 3.5 s to be answered (longer than the window); the
      // next two would be answered at once. Dated at admission, the first two left the window before
      // they arrived and the next two arrived beside them (4 in 1.3 s).
      dns.set('slow.example', [{ type: 'MX', exchange: 'mx.slow.example', priority: 10 }]);
      dns.set('mx.slow.example', [{ type: 'A', address: '127.0.0.1' }]);
      const policy = (await m.api('POST', '/v1/limits', { scope: 'recipient_domain', match: 'slow.example', max: 2, window_seconds: 2 })).body;
      const inbox = (await m.api('POST', '/v1/inboxes', { username: 'inflight' })).body;
      const send = async (i: number) => {
        const r = await m.api('POST', `/v1/inboxes/${inbox.id}/messages`, { to: `s${i}@slow.example`, subject: `in flight ${i}`, text: 'x' });
        assert.equal(r.status, 202, JSON.stringify(r.body));
      };
      const before = mx.messages.length;
      mx.delayMs = 3500;
      try {
        await Promise.all([send(1), send(2)]);
        // Once both are being delivered (their recipients `sending`), later deliveries are answered at once.
        await waitFor(async () => {
          const rows = await m.store.db.selectFrom('outbound_recipients').select('status').where('domain', '=', 'slow.example').execute();
          return rows.length === 2 && rows.every((r) => r.status === 'sending');
        }, 20_000, 'the first two in flight');
        await new Promise((r) => setTimeout(r, 300)); // their DATA has reached the sink, with the slow answer
        mx.delayMs = 0;
        await Promise.all([send(3), send(4)]);
        const got = (await mx.waitFor(before + 4, 60_000)).slice(before).filter((g) => g.to[0].endsWith('@slow.example'));
        const times = got.map((g) => g.at);
        assert.equal(times.length, 4, 'all four arrived');
        const peak = maxInAnyWindow(times, 2000);
        console.log(`  ${engine} in flight: ${JSON.stringify({ peak, arrivals: times.map((t) => t - Math.min(...times)) })}`);
        assert.ok(peak <= 2, `${peak} arrived within one 2 s window`);
      } finally {
        mx.delayMs = 0;
        await m.api('DELETE', `/v1/limits/${policy.id}`);
      }
    });

    /** Admission called directly (no transport), one recipient at `r<n>@<name>.example` per call, each its own message `msg_<name>_<n>`. */
    const admitter = (name: string) => {
      const limits = new Limits(m.store.db);
      const sender = { inboxId: `ibx_${name}`, domain: 'mailroom.test', domainCreatedAt: null };
      const admit = (n: number) => m.store.db.transaction().execute((trx) => limits.admit(trx, [
        { id: `rcp_${name}_${n}`, address: `r${n}@${name}.example`, sender, messageId: `msg_${name}_${n}` },
      ]));
      return { limits, admit };
    };

    test('a send left in flight by a worker that died is re-dated when tried again (limits.restart): its slot frees a window later, not when the in-flight hold expires', async () => {
      const policy = (await m.api('POST', '/v1/limits', { scope: 'recipient_domain', match: 'restart.example', max: 1, window_seconds: 1 })).body;
      try {
        const { limits, admit: admitOne } = admitter('restart');
        const admit = async (n: number) => (await admitOne(n)).admitted.length;
        assert.equal(await admit(0), 1);
        // Admitted and never answered (its worker died): the attempt holds the window as in flight,
        // long after a window has passed.
        await new Promise((r) => setTimeout(r, 1300));
        assert.equal(await admit(1), 0, 'held while in flight');
        // The retry re-dates the attempt to now: it counts for one window from now, then frees.
        await m.store.db.transaction().execute((trx) => limits.restart(trx, ['msg_restart_0']));
        assert.equal(await admit(2), 0, 'counted for a window from the restart');
        await new Promise((r) => setTimeout(r, 1300));
        assert.equal(await admit(3), 1, 'free a window after the restart');
      } finally {
        assert.equal((await m.api('DELETE', `/v1/limits/${policy.id}`)).status, 204);
      }
    });

    test('L7 clocks that disagree: a window is dated and counted by the database clock, for a process ahead and for one behind', async () => {
      const policy = (await m.api('POST', '/v1/limits', { scope: 'recipient_domain', match: 'skew.example', max: 2, window_seconds: 4 })).body;
      try {
        const { limits, admit } = admitter('skew');
        // Two sends admitted and answered now (settled: dated by their answer).
        for (const n of [0, 1]) {
          const { admitted, admittedAt } = await admit(n);
          assert.equal(admitted.length, 1);
          await m.store.db.transaction().execute((trx) => limits.settle(trx, [`msg_skew_${n}`], admittedAt));
        }
        // Another process, its clock 5 s ahead (more than the 4 s window and its guard): by its own
        // clock those two sends left the window already; by the database's they fill it.
        mock.timers.enable({ apis: ['Date'], now: Date.now() + 5_000 });
        try {
          assert.equal((await admit(2)).admitted.length, 0, 'the window is full for every process, whatever its clock says');
        } finally {
          mock.timers.reset();
        }
        // The other way round: sends answered in a process whose clock is 5 s behind are dated by the
        // database's clock too, so they fill the window for a process with the right time.
        await m.store.db.deleteFrom('rate_usage').where('policy_id', '=', policy.id).execute();
        for (const n of [3, 4]) {
          const { admitted, admittedAt } = await admit(n);
          assert.equal(admitted.length, 1);
          mock.timers.enable({ apis: ['Date'], now: Date.now() - 5_000 });
          try {
            await m.store.db.transaction().execute((trx) => limits.settle(trx, [`msg_skew_${n}`], admittedAt));
          } finally {
            mock.timers.reset();
          }
        }
        assert.equal((await admit(5)).admitted.length, 0, 'sends settled by a process behind still fill the window');
      } finally {
        assert.equal((await m.api('DELETE', `/v1/limits/${policy.id}`)).status, 204);
      }
    });

    test('a send that will wait says so: scheduled_at in its response; GET /v1/limits shows usage and what remains', async () => {
      const inbox = (await m.api('POST', '/v1/inboxes', { username: 'capped' })).body;
      const policy = (await m.api('POST', '/v1/limits', { scope: 'inbox', match: inbox.id, max: 2, window: 'day' })).body;
      const send = async (i: number) => (await m.api('POST', `/v1/inboxes/${inbox.id}/messages`, { to: `p${i}@example.org`, subject: `cap ${i}`, text: 'x' })).body;
      const sent = [];
      for (const i of [1, 2]) {
        const r = await send(i);
        sent.push(r);
        await waitFor(async () => (await m.api('GET', `/v1/messages/${r.id}`)).body.delivery.status === 'sent', 20_000, 'sent');
      }
      const third = await send(3);
      assert.equal(third.delivery.status, 'queued');
      const eta = new Date(third.delivery.scheduled_at).getTime();
      assert.ok(eta > Date.now() + 23 * 3600_000, `scheduled for tomorrow, got ${third.delivery.scheduled_at}`);
      const usage = (await m.api('GET', '/v1/limits')).body.data.find((p: any) => p.id === policy.id).usage;
      assert.deepEqual(usage.map((u: any) => [u.key, u.used, u.remaining]), [[inbox.id, 2, 0]]);
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal((await m.api('GET', `/v1/messages/${third.id}`)).body.delivery.status, 'queued', 'it waits; it is not sent and not dropped');
      assert.equal((await m.api('DELETE', `/v1/limits/${policy.id}`)).status, 204);
    });

    test('warm-up: a new sending domain gets the day-1 cap of its schedule', async () => {
      const inbox = (await m.api('POST', '/v1/inboxes', { username: 'warming' })).body;
      const policy = await m.api('POST', '/v1/limits', { scope: 'domain', match: 'mailroom.test', max: 1000, window: 'day', warmup: [1, 5, 20] });
      assert.equal(policy.status, 201);
      // Day 1 of the schedule: one send goes, the next waits for tomorrow.
      const first = (await m.api('POST', `/v1/inboxes/${inbox.id}/messages`, { to: 'w1@example.org', subject: 'warm 1', text: 'x' })).body;
      await waitFor(async () => (await m.api('GET', `/v1/messages/${first.id}`)).body.delivery.status === 'sent', 20_000, 'the first send');
      const r = (await m.api('POST', `/v1/inboxes/${inbox.id}/messages`, { to: 'w2@example.org', subject: 'warm 2', text: 'x' })).body;
      assert.equal(r.delivery.status, 'queued');
      assert.ok(new Date(r.delivery.scheduled_at).getTime() > Date.now() + 23 * 3600_000, r.delivery.scheduled_at);
      const usage = (await m.api('GET', '/v1/limits')).body.data.find((p: any) => p.id === policy.body.id).usage;
      assert.deepEqual(usage.map((u: any) => [u.key, u.used]), [['mailroom.test', 1]]);
      const bad = await m.api('POST', '/v1/limits', { scope: 'inbox', max: 5, window: 'hour', warmup: [1] });
      assert.equal(bad.status, 400);
      assert.equal((await m.api('DELETE', `/v1/limits/${policy.body.id}`)).status, 204);
    });
  });
}
