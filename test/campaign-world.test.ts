import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { addBusinessDays, isoDay, makeProspects, personaOfAddress, PERSONAS, DEFAULT_MIX, type Persona } from '../src/orchestrator/demo/personas.ts';
import { startWorld, type World, type WorldMessage, type WorldReaction } from '../src/orchestrator/demo/world.ts';
import nodemailer from 'nodemailer';
import { ENGINES, skipEngine, startTestMailroom, waitFor, type TestMailroom } from './helpers/mailroom.ts';
import { startSink } from './helpers/sink.ts';
import { headerOf, message, SmtpClient } from './helpers/smtp.ts';

/**
 * The simulated prospects' mail world (issue 6, `mailroom demo` and the campaign tests): a real
 * Mailroom relays every send to it over SMTP, and it answers back over SMTP as each persona would.
 * Proven here against Mailroom itself: a refusal at RCPT is a hard bounce, the DSN and the ARF
 * report are matched to their send by the VERP return path, every reply threads with its send,
 * Mailroom classifies the auto-replies (with the return date the world wrote) and quarantines the
 * injection, the colleague writes from the same domain, silence stays silent; and a reaction that
 * cannot be delivered is retried until Mailroom takes it.
 */

// The campaign clock: 1 real second = 1 simulated hour, from Monday 2026-06-01 09:00 UTC.
const SCALE = 3600;
const SIM_START = Date.parse('2026-06-01T09:00:00Z');
function campaignClock() {
  const realStart = Date.now();
  return { simNow: () => new Date(SIM_START + (Date.now() - realStart) * SCALE), realDelayForSim: (simMs: number) => simMs / SCALE };
}

describe('personas', () => {
  test('an address names its persona by the start of its local part; anything else is no persona', () => {
    assert.equal(personaOfAddress('interested.12@acme.example'), 'interested');
    assert.equal(personaOfAddress('silent-3@x.example'), 'silent');
    assert.equal(personaOfAddress('Not_Interested@x.example'), 'not_interested');
    assert.equal(personaOfAddress('not-interested.4@x.example'), 'not_interested');
    assert.equal(personaOfAddress('out-of-office+7@x.example'), 'out_of_office');
    assert.equal(personaOfAddress('auto_reply.1@x.example'), 'auto_reply');
    assert.equal(personaOfAddress('interestedparty@x.example'), null, 'a persona name must end at a separator');
    assert.equal(personaOfAddress('maria.lopez@x.example'), null);
  });

  test('business days skip the weekend', () => {
    const friday = new Date('2026-06-05T16:00:00Z');
    assert.equal(isoDay(addBusinessDays(friday, 1)), '2026-06-08');
    assert.equal(isoDay(addBusinessDays(friday, 3)), '2026-06-10');
    assert.equal(isoDay(addBusinessDays(new Date('2026-06-01T09:00:00Z'), 3)), '2026-06-04');
  });

  test('makeProspects: the mix in proportion, deterministic, every address recognised as its persona', () => {
    const a = makeProspects(200);
    assert.deepEqual(a, makeProspects(200));
    assert.equal(new Set(a.map((p) => p.address)).size, 200);
    const total = Object.values(DEFAULT_MIX).reduce((s, w) => s + w, 0);
    for (const p of PERSONAS) {
      const n = a.filter((x) => x.persona === p).length;
      assert.ok(Math.abs(n - (200 * DEFAULT_MIX[p]) / total) < 1, `${p}: ${n}`);
    }
    for (const p of a) assert.equal(personaOfAddress(p.address), p.persona);
    const shared = makeProspects(9, { perCompany: 3 });
    assert.equal(new Set(shared.map((p) => p.domain)).size, 3);
  });
});

/** A loopback port nobody listens on (taken from the OS, then released). */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', () => resolve()));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

describe('the world on its own (an smtp-server sink standing in for Mailroom)', () => {
  test('greets at once, takes AUTH from a relay client, answers every message when told to, auto-replies to the return path, drops bytes with keepRaw: false', async () => {
    const mailroom = await startSink({ starttls: false });
    const world = await startWorld({
      mailroom: { host: '127.0.0.1', port: mailroom.port }, ...campaignClock(), replyToEveryMessage: true, autoReplyTo: 'return_path', keepRaw: false,
    });
    try {
      // The world greets at once; another smtp-server in the same process (the sink here, Mailroom
      // in the campaign tests) keeps its 100 ms early-talker delay.
      const greet = async (port: number) => {
        const started = performance.now();
        const c = await SmtpClient.connect(port);
        const ms = performance.now() - started;
        assert.equal(c.greeting.code, 220);
        return { c, ms };
      };
      const sinkGreeting = await greet(mailroom.port);
      await sinkGreeting.c.quit();
      const { c, ms } = await greet(world.port);
      assert.ok(sinkGreeting.ms >= 95 && ms < sinkGreeting.ms, `world ${ms} ms, other server ${sinkGreeting.ms} ms`);
      assert.match((await c.cmd('EHLO relay.test')).text, /AUTH PLAIN LOGIN/);
      await c.quit();

      const client = nodemailer.createTransport(`smtp://agent:secret@127.0.0.1:${world.port}`);
      const raw = (i: number) => message({ from: 'Agent <agent@mailroom.test>', to: 'out-of-office.1@away.example', subject: `Note ${i}`, messageId: `<note-${i}@mailroom.test>`, body: `Note ${i}` });
      for (const i of [1, 2]) await client.sendMail({ envelope: { from: 'bounces+x@mailroom.test', to: ['out-of-office.1@away.example'] }, raw: raw(i) });
      client.close();
      await waitFor(async () => world.sent.length === 2, 20_000, 'two auto-replies');
      await world.settled();
      assert.deepEqual(world.sent.map((r) => r.to), ['bounces+x@mailroom.test', 'bounces+x@mailroom.test']);
      assert.deepEqual(world.sent.map((r) => r.answers).sort(), ['<note-1@mailroom.test>', '<note-2@mailroom.test>']);
      const got = await mailroom.waitFor(2);
      assert.ok(got.every((g) => g.from === ''), 'auto-replies carry the null reverse-path');
      assert.equal(headerOf(got[0].raw, 'Auto-Submitted'), 'auto-replied');
      assert.ok(world.received.every((x) => x.raw.length === 0 && x.subject?.startsWith('Note')), 'records kept, bytes dropped');
    } finally {
      await world.stop();
      await mailroom.close();
    }
  });
});

const REPLYING: Persona[] = ['interested', 'not_interested', 'question', 'wrong_person', 'unsubscribe', 'colleague', 'out_of_office', 'auto_reply', 'injection'];

for (const engine of ENGINES) {
  describe(`${engine}: the simulated prospects' world, relaying for a real Mailroom`, { skip: await skipEngine(engine) }, () => {
    let m: TestMailroom;
    let world: World;
    let inbox: { id: string; address: string };
    let clock: ReturnType<typeof campaignClock>;
    const log: string[] = [];
    before(async () => {
      clock = campaignClock();
      world = await startWorld({ mailroom: { host: '127.0.0.1', port: 0 }, simNow: () => clock.simNow(), realDelayForSim: (ms) => clock.realDelayForSim(ms), log: (l) => log.push(l) });
      m = await startTestMailroom(engine, { MAILROOM_SMTP_RELAY_URL: world.relayUrl });
      world.setMailroom({ host: '127.0.0.1', port: m.smtpPort });
      inbox = (await m.api('POST', '/v1/inboxes', { username: 'outreach', display_name: 'Sam at Mailroom' })).body;
    });
    after(async () => {
      await world?.stop();
      await m?.destroy();
    });

    const send = async (to: string, subject: string, headers: Record<string, string> = {}) => {
      const r = await m.api('POST', `/v1/inboxes/${inbox.id}/messages`, { to, subject, text: `Hi,\n\nA short note about ${subject}.\n\nSam`, headers });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      return r.body as { id: string; message_id: string; thread_id: string };
    };
    const delivery = async (id: string) => (await m.api('GET', `/v1/messages/${id}`)).body.delivery;
    const inbound = async (query = '') => (await m.api('GET', `/v1/inboxes/${inbox.id}/messages?direction=inbound&limit=200${query}`)).body.data as any[];
    const reactionFor = (address: string) => waitFor(async () => world.sent.find((r) => r.prospect === address), 20_000, `the world's reaction for ${address}`);
    const stored = (r: WorldReaction, query = '') => waitFor(async () => (await inbound(query)).find((x) => x.message_id === r.messageId), 20_000, `Mailroom to store the ${r.kind} reply`);

    test('one send per persona: bounces, DSN and complaint matched; every reply in its thread, classified; silent stays silent', async () => {
      const address = (p: Persona) => `${p.replace(/_/g, '-')}.1@${p.replace(/_/g, '-')}.example`;
      const sends = new Map<Persona, { id: string; message_id: string; thread_id: string }>();
      for (const p of PERSONAS) sends.set(p, await send(address(p), `Idea for ${p}`, { 'X-Mailroom-Campaign': 'cmp_world', 'X-Mailroom-Lead': `lead_${p}`, 'X-Mailroom-Step': '1' }));

      // The world got every message except the refused one, signed and with the campaign headers.
      const got = await waitFor(async () => (world.received.length >= PERSONAS.length - 1 ? world.received : null), 20_000, 'every accepted message at the world');
      for (const p of PERSONAS.filter((x) => x !== 'hard_bounce')) {
        const w = got.find((x) => x.to === address(p)) as WorldMessage;
        assert.ok(w, p);
        assert.equal(w.persona, p);
        assert.equal(w.envelopeFrom, `bounces+${sends.get(p)!.id}@mailroom.test`, 'the VERP return path');
        assert.equal(w.messageId, sends.get(p)!.message_id);
        assert.equal(w.subject, `Idea for ${p}`);
        assert.match(w.text, /A short note/);
        assert.equal(w.mailroomHeaders['x-mailroom-campaign'], 'cmp_world');
        assert.equal(w.mailroomHeaders['x-mailroom-lead'], `lead_${p}`);
        assert.equal(w.mailroomHeaders['x-mailroom-step'], '1');
        assert.ok(w.dkim && w.dkimDomain === 'mailroom.test', 'DKIM-signed by Mailroom');
        assert.ok(w.simAt.getTime() >= SIM_START);
      }

      // hard_bounce: refused at RCPT, a synchronous hard bounce in Mailroom.
      const hard = await waitFor(async () => { const d = await delivery(sends.get('hard_bounce')!.id); return d.status === 'bounced' ? d : null; }, 20_000, 'the hard bounce');
      assert.equal(hard.recipients[0].bounce_type, 'hard');
      assert.match(hard.recipients[0].response, /550 5\.1\.1 .*user unknown/);
      assert.deepEqual(world.refused.map((r) => [r.to, r.code]), [[address('hard_bounce'), 550]]);

      // async_bounce: accepted, then a DSN to the VERP address, matched to the send.
      const dsn = await reactionFor(address('async_bounce'));
      assert.equal(dsn.to, `bounces+${sends.get('async_bounce')!.id}@mailroom.test`);
      assert.equal(dsn.envelopeFrom, '');
      assert.equal(dsn.from, `mailer-daemon@${world.hostname}`);
      const bounced = await waitFor(async () => { const d = await delivery(sends.get('async_bounce')!.id); return d.status === 'bounced' ? d : null; }, 20_000, 'the DSN to be applied');
      assert.equal(bounced.recipients[0].bounce_type, 'hard');
      assert.equal(bounced.recipients[0].bounce_reason, 'userunknown');

      // complaint: an ARF report to the VERP address, matched.
      const arf = await reactionFor(address('complaint'));
      assert.equal(arf.to, `bounces+${sends.get('complaint')!.id}@mailroom.test`);
      const complained = await waitFor(async () => (await m.store.db.selectFrom('events').selectAll().where('message_id', '=', sends.get('complaint')!.id).where('type', '=', 'message.complained').execute())[0], 20_000, 'message.complained');
      assert.equal((complained.data as any).feedback_type, 'abuse');
      assert.equal((await m.api('GET', `/v1/suppressions?address=${address('complaint')}`)).body.data[0]?.reason, 'complaint');

      // Every replying persona: a reply in the thread of its send.
      const replies = new Map<Persona, any>();
      for (const p of REPLYING) {
        const r = await reactionFor(address(p));
        assert.equal(r.kind, p);
        assert.equal(r.answers, sends.get(p)!.message_id);
        assert.equal(r.to, inbox.address, 'answered to the sender');
        const x = await stored(r, p === 'injection' ? '&disposition=quarantined' : '');
        assert.equal(x.thread_id, sends.get(p)!.thread_id, `${p}: the reply is in the send's thread`);
        assert.equal(x.in_reply_to, sends.get(p)!.message_id);
        assert.ok(x.references.includes(sends.get(p)!.message_id));
        replies.set(p, (await m.api('GET', `/v1/messages/${x.id}`)).body);
      }
      for (const p of ['interested', 'not_interested', 'question', 'wrong_person', 'unsubscribe']) {
        const x = replies.get(p as Persona);
        assert.equal(x.from.address, address(p as Persona));
        assert.equal(x.subject, `Re: Idea for ${p}`);
        assert.equal(x.kind, 'human', p);
        assert.equal(x.disposition, 'delivered', p);
        assert.match(x.text, /^On .* 2026 at .* Sam at Mailroom <outreach@mailroom\.test> wrote:$/m, 'quoted as Gmail quotes');
        assert.match(x.text, /^> A short note about/m);
        assert.ok(x.extracted_text && !/wrote:|^>/m.test(x.extracted_text), `${p}: Mailroom trims the quote: ${x.extracted_text}`);
        assert.ok(Date.parse(x.date) >= SIM_START, 'dated on the campaign clock');
        assert.match(x.message_id, new RegExp(`@${p.replace(/_/g, '-')}\\.example>$`));
      }
      assert.match(replies.get('wrong_person').text, /Maria Lopez <maria\.lopez@wrong-person\.example>/);
      assert.deepEqual(world.sent.find((r) => r.kind === 'wrong_person')!.referral, { name: 'Maria Lopez', address: 'maria.lopez@wrong-person.example' });
      assert.match(replies.get('unsubscribe').text, /Please remove me from your list/);

      // out_of_office: Mailroom reads the return date the world wrote, 3 business days after arrival.
      const ooo = world.sent.find((r) => r.kind === 'out_of_office')!;
      const arrived = world.received.find((x) => x.to === address('out_of_office'))!.simAt;
      assert.equal(ooo.returnDate, isoDay(addBusinessDays(arrived, 3)));
      assert.equal(replies.get('out_of_office').kind, 'out_of_office');
      assert.equal(replies.get('out_of_office').return_date, ooo.returnDate);
      assert.match(replies.get('out_of_office').text, new RegExp(`I am out of the office until ${ooo.returnDateText}`));
      assert.equal(replies.get('auto_reply').kind, 'auto_reply');
      assert.equal(replies.get('auto_reply').return_date, null);

      // colleague: someone else at the same domain, in the thread.
      const col = replies.get('colleague');
      assert.equal(col.from.address, 'jordan.lee@colleague.example');
      assert.notEqual(col.from.address, address('colleague'));
      assert.equal(col.from.address.split('@')[1], address('colleague').split('@')[1]);
      assert.ok(col.cc.some((c: any) => c.address === address('colleague')));

      // injection: scored high, held by the inbox's default policy.
      const inj = replies.get('injection');
      assert.equal(inj.security.injection.level, 'high');
      assert.equal(inj.disposition, 'quarantined');
      assert.ok(inj.security.injection.signals.some((s: any) => s.location === 'hidden_html'));
      assert.ok(!(await inbound()).some((x) => x.id === inj.id), 'held mail is out of the default listing');

      // A follow-up to the out-of-office prospect gets no second auto-reply; silent never answers.
      await send(address('out_of_office'), 'Re: Idea for out_of_office', { 'X-Mailroom-Campaign': 'cmp_world', 'X-Mailroom-Step': '2' });
      await waitFor(async () => world.received.filter((x) => x.to === address('out_of_office')).length === 2, 20_000, 'the follow-up at the world');
      await world.settled();
      assert.equal(world.sent.filter((r) => r.prospect === address('out_of_office')).length, 1);
      assert.equal(world.reactions.filter((r) => r.prospect === address('silent')).length, 0);
      assert.ok(!(await inbound()).some((x) => x.from?.address === address('silent')));

      const s = world.summary();
      assert.equal(s.total.pending, 0);
      assert.equal(s.total.failed, 0);
      for (const p of PERSONAS) {
        const want = { received: p === 'hard_bounce' ? 0 : p === 'out_of_office' ? 2 : 1, reactions: p === 'silent' || p === 'hard_bounce' ? 0 : 1, refused: p === 'hard_bounce' ? 1 : 0 };
        assert.deepEqual(s.personas[p], want, p);
      }
      assert.ok(log.some((l) => l.startsWith('received ')) && log.some((l) => l.startsWith('sent ')));
    });

    test('inject: a reply six simulated hours after the send, while Mailroom is unreachable, is retried until it is taken, and threads', async () => {
      const sent = await send('silent.9@later.example', 'Checking in', { 'X-Mailroom-Campaign': 'cmp_world' });
      const msg = await waitFor(async () => world.received.find((x) => x.to === 'silent.9@later.example'), 20_000, 'the send at the world');
      const simSent = msg.simAt.getTime();
      await waitFor(async () => clock.simNow().getTime() - simSent >= 6 * 3_600_000, 20_000, 'six simulated hours');

      // Mailroom "down": nothing listens where the world delivers.
      world.setMailroom({ host: '127.0.0.1', port: await closedPort() });
      let settled = false;
      const injected = world.inject({ message: msg, text: 'Sorry for the slow answer — yes, let us talk next week.' });
      void world.settled().then(() => { settled = true; });
      const pending = await waitFor(async () => world.reactions.find((r) => r.prospect === 'silent.9@later.example' && r.attempts >= 3), 20_000, 'retries');
      assert.equal(pending.status, 'sending');
      assert.equal(settled, false, 'a reaction being retried keeps the world unsettled');
      world.setMailroom({ host: '127.0.0.1', port: m.smtpPort });
      const r = await injected;
      assert.equal(r.kind, 'custom');
      assert.equal(r.status, 'sent');
      assert.ok(r.simAt!.getTime() - simSent >= 6 * 3_600_000);
      await world.settled();
      const x = await stored(r);
      assert.equal(x.thread_id, sent.thread_id);
      assert.equal(x.kind, 'human');
      assert.equal(x.from.address, 'silent.9@later.example');
    });
  });
}
