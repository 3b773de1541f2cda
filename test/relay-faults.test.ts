import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ENGINES, skipEngine, startTestMailroom, waitFor, type TestMailroom } from './helpers/mailroom.ts';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy.ts';
import { headerOf } from './helpers/smtp.ts';
import { startSink, type Sink } from './helpers/sink.ts';

/**
 * L3 relay network faults: the path to the relay delays every packet and cuts connections at random
 * points (a seeded fault proxy; a dozen cuts at most, so that the retries' exponential backoff —
 * 1, 2, 4… s here — ends within the test's time). Every send still ends delivered within the retry
 * horizon, nothing is stuck in `queued`/`sending`/`deferred`, every copy at the relay carries its
 * message's Message-ID, and a message reaches the relay more than once only as often as an attempt
 * of unknown outcome was recorded for it (I7: the connection cut after the final dot).
 */
const MESSAGES = 40;
const SEED = Number(process.env.FAULT_SEED ?? Math.floor(Math.random() * 2 ** 31));

for (const engine of ENGINES) {
  describe(`${engine}: L3 sending through a relay over a faulty network (seed ${SEED})`, { skip: await skipEngine(engine) }, () => {
    let m: TestMailroom;
    let relay: Sink;
    let proxy: FaultProxy;
    before(async () => {
      relay = await startSink({ starttls: false });
      proxy = await startFaultProxy({ port: relay.port }, { cutChance: 0.06, delayMs: 5, maxCuts: 12, seed: SEED });
      m = await startTestMailroom(engine, { MAILROOM_SMTP_RELAY_URL: `smtp://127.0.0.1:${proxy.port}`, MAILROOM_SEND_RETRY_BASE_SECONDS: '1' });
    });
    after(async () => {
      await m?.destroy();
      await proxy?.close();
      await relay?.close();
    });

    test(`L3 ${MESSAGES} sends: all delivered, none stuck, duplicates only where an unknown outcome was recorded`, async (t) => {
      const inbox = (await m.api('POST', '/v1/inboxes', { username: 'faulty' })).body;
      const sent = await Promise.all(Array.from({ length: MESSAGES }, async (_, i) => {
        const r = await m.api('POST', `/v1/inboxes/${inbox.id}/messages`, { to: `lead${i}@example.org`, subject: `faulty ${i}`, text: `body ${i}` });
        assert.equal(r.status, 202, JSON.stringify(r.body));
        return { id: r.body.id as string, messageId: r.body.message_id as string, to: `lead${i}@example.org` };
      }));
      const ids = sent.map((s) => s.id);
      const final = await waitFor(async () => {
        const rows = await m.store.db.selectFrom('outbound_recipients').select(['message_id', 'status', 'attempts']).where('message_id', 'in', ids).execute();
        return rows.every((r) => ['sent', 'bounced', 'failed'].includes(r.status)) ? rows : null;
      }, 120_000, "every send to reach a final state");
      assert.deepEqual(final.map((r) => r.status).filter((s) => s !== 'sent'), [], `every recipient sent (faults injected: ${proxy.cuts})`);
      assert.ok(proxy.cuts > 0, 'the proxy cut connections (else this run tested nothing)');
      const retried = final.filter((r) => r.attempts > 1).length;
      const risk = await m.store.db.selectFrom('events').select(['message_id']).where('message_id', 'in', ids)
        .where('type', '=', 'message.deferred').where(({ eb, ref }) => eb(ref('data', '->>').key('duplicate_risk' as never), '=', 'true')).execute();
      const riskOf = new Map<string, number>();
      for (const r of risk) riskOf.set(r.message_id!, (riskOf.get(r.message_id!) ?? 0) + 1);
      for (const s of sent) {
        const copies = relay.messages.filter((g) => g.to.includes(s.to));
        assert.ok(copies.length >= 1, `${s.to} reached the relay`);
        assert.ok(copies.length <= 1 + (riskOf.get(s.id) ?? 0), `${s.to}: ${copies.length} copies, ${riskOf.get(s.id) ?? 0} attempts of unknown outcome`);
        for (const c of copies) assert.equal(headerOf(c.raw, 'Message-ID'), s.messageId);
      }
      // How hard the network was, in the test's output.
      t.diagnostic(`seed ${SEED}: ${proxy.cuts} connections cut, ${retried} recipients retried, ${risk.length} attempts of unknown outcome, ${relay.messages.length} copies at the relay`);
    });
  });
}
