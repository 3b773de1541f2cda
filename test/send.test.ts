import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ENGINES, skipEngine, startTestMailroom, waitFor, waitForMessages, type TestMailroom } from './helpers/mailroom.ts';
import { dkimpyAvailable, dkimpyVerify } from './helpers/dkim.ts';
import { startDns, type TestDns } from './helpers/dns.ts';
import { startSink, type Sink } from './helpers/sink.ts';
import { headerOf, SmtpClient, message } from './helpers/smtp.ts';

/**
 * Sending (issue 3): the send API, each transport against a real smtp-server playing the remote
 * MX or relay, DKIM checked by an independent verifier, replies threaded, refusals before queueing.
 */

async function outboundCount(m: TestMailroom): Promise<number> {
  return Number((await m.store.db.selectFrom('outbound').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);
}

async function waitForStatus(m: TestMailroom, id: string, status: string | string[], timeoutMs = 20_000): Promise<any> {
  const want = Array.isArray(status) ? status : [status];
  return waitFor(async () => {
    const r = await m.api('GET', `/v1/messages/${id}`);
    return r.status === 200 && want.includes(r.body.delivery?.status) ? r.body : null;
  }, timeoutMs, `message ${id} to be ${want.join('|')}`);
}

async function dkimRecord(m: TestMailroom, domain: string): Promise<string> {
  const d = (await m.api('GET', `/v1/domains/${domain}`)).body;
  return d.records.find((r: any) => r.purpose === 'dkim').value;
}

for (const engine of ENGINES) {
  describe(`${engine}: sending through each transport`, { skip: await skipEngine(engine) }, () => {
    let m: TestMailroom;
    let mx: Sink;
    let dns: TestDns;
    let inbox: { id: string; address: string };
    before(async () => {
      mx = await startSink({ rcpt: (a) => (a.startsWith('nobody@') ? { code: 550, message: '5.1.1 <nobody@example.net>: Recipient address rejected: User unknown' } : null) });
      dns = await startDns();
      // example.net: the first MX is unreachable (nothing listens on 127.0.0.2), the second is the sink.
      dns.set('example.net', [{ type: 'MX', exchange: 'mx1.example.net', priority: 10 }, { type: 'MX', exchange: 'mx2.example.net', priority: 20 }]);
      dns.set('mx1.example.net', [{ type: 'A', address: '127.0.0.2' }]);
      dns.set('mx2.example.net', [{ type: 'A', address: '127.0.0.1' }]);
      // No MX at all: the domain's own A record is the implicit MX (RFC 5321 §5.1).
      dns.set('implicit.example', [{ type: 'A', address: '127.0.0.1' }]);
      m = await startTestMailroom(engine, { MAILROOM_DNS_SERVERS: dns.server, MAILROOM_MX_PORT: String(mx.port) });
      inbox = (await m.api('POST', '/v1/inboxes', { username: 'sender', display_name: 'Sales Agent' })).body;
    });
    after(async () => {
      await m?.destroy();
      await mx?.close();
      await dns?.close();
    });

    test('direct MX: MX preference with fallback, opportunistic STARTTLS, headers, Bcc only in the envelope, DKIM verified by dkimpy', async () => {
      const before = mx.messages.length;
      const attachment = Buffer.from('%PDF-1.4 quarterly numbers\n');
      const r = await m.api('POST', `/v1/inboxes/${inbox.id}/messages`, {
        to: ['Lead One <lead@example.net>'], bcc: 'boss@example.net', subject: 'Quarterly numbers', text: 'Hi,\r\nthe numbers.\r\n',
        html: '<p>Hi, the numbers.</p>', attachments: [{ filename: 'q3.pdf', content_type: 'application/pdf', content: attachment.toString('base64') }],
        headers: { 'X-Campaign': 'q3' }, labels: ['outreach'], metadata: { lead: 42 }, trace_id: 'trace-abc',
      });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      assert.equal(r.body.direction, 'outbound');
      assert.equal(r.body.delivery.status, 'queued');
      assert.deepEqual(r.body.delivery.labels, ['outreach']);
      assert.equal(r.body.delivery.trace_id, 'trace-abc');
      const [got] = (await mx.waitFor(before + 1)).slice(before);
      assert.deepEqual(got.to.sort(), ['boss@example.net', 'lead@example.net'], 'Bcc is an envelope recipient');
      assert.equal(got.from, `bounces+${r.body.id}@mailroom.test`, 'VERP return path names the message');
      assert.ok(got.secure, 'STARTTLS was used: the sink offered it');
      assert.equal(headerOf(got.raw, 'Bcc'), null, 'no Bcc header is written');
      assert.equal(headerOf(got.raw, 'From'), 'Sales Agent <sender@mailroom.test>');
      assert.equal(headerOf(got.raw, 'To'), 'Lead One <lead@example.net>');
      assert.equal(headerOf(got.raw, 'Subject'), 'Quarterly numbers');
      assert.equal(headerOf(got.raw, 'X-Campaign'), 'q3');
      assert.equal(headerOf(got.raw, 'Message-ID'), r.body.message_id);
      assert.match(headerOf(got.raw, 'DKIM-Signature') ?? '', /d=mailroom\.test; .*s=mr\d{6}/);
      assert.ok(got.raw.includes(attachment.toString('base64').trim()), 'the attachment is in the message');
      if (dkimpyAvailable()) {
        const v = dkimpyVerify(got.raw, await dkimRecord(m, 'mailroom.test'));
        assert.ok(v.ok, `dkimpy: ${v.output}`);
        // And a tampered copy fails: the verifier is really checking.
        const tampered = Buffer.from(got.raw.toString('latin1').replace('the numbers.', 'the number$.'), 'latin1');
        assert.equal(dkimpyVerify(tampered, await dkimRecord(m, 'mailroom.test')).ok, false);
      } else if (process.env.CI) {
        assert.fail('python3-dkim is not installed (.ci/run installs it)');
      }
      const done = await waitForStatus(m, r.body.id, 'sent');
      for (const rc of done.delivery.recipients) {
        assert.equal(rc.status, 'sent');
        assert.equal(rc.transport, 'mx');
        assert.match(rc.response, /^250/);
      }
      assert.equal(done.attachments.length, 1);
      assert.equal(done.attachments[0].filename, 'q3.pdf');
      // Events carry the caller's trace id.
      const events = await m.store.db.selectFrom('events').selectAll().where('message_id', '=', r.body.id).orderBy('id').execute();
      assert.deepEqual(events.map((e) => e.type), ['message.queued', 'message.sent', 'message.sent']);
      assert.ok(events.every((e) => e.trace_id === 'trace-abc'));
    });

    test('S5 outbound transparency: body lines ".", "..x", a lone CR and bare LFs arrive as one CRLF-only message, unaltered in meaning', async () => {
      const before = mx.messages.length;
      const text = '.\n..x\nline with lone\rCR\n.\n\r\n.end';
      const r = await m.api('POST', `/v1/inboxes/${inbox.id}/messages`, { to: 'transparency@example.net', subject: 'S5', text });
      assert.equal(r.status, 202);
      await waitForStatus(m, r.body.id, 'sent');
      const got = mx.messages.slice(before).filter((x) => x.to.includes('transparency@example.net'));
      assert.equal(got.length, 1, 'exactly one message: no line ended DATA early');
      const raw = got[0].raw.toString('latin1');
      assert.ok(!/[^\r]\n/.test(raw) && !/\r[^\n]/.test(raw), 'only CRLF line ends on the wire');
      // The stored copy parses back to the text (line ends normalised to LF by the parser).
      const stored = (await m.api('GET', `/v1/messages/${r.body.id}`)).body.text as string;
      assert.equal(stored.replace(/\r\n?/g, '\n').trimEnd(), text.replace(/\r\n?/g, '\n').trimEnd());
    });

    test('the 202 answer is the stored message: equal to GET /v1/messages/{id}, attachments, recipients and delivery included', async () => {
      // The send group answers from the rows its inserts returned, not from a read after the commit;
      // this holds the two equal. A limit of 0 keeps the message queued, so nothing changes between.
      const policy = (await m.api('POST', '/v1/limits', { scope: 'recipient_domain', match: 'held.example', max: 0, window_seconds: 3600 })).body;
      try {
        const body = {
          to: ['"Ann Lee" <ann@held.example>', 'bob@held.example'], cc: ['cat@held.example'], bcc: ['dan@held.example'],
          subject: 'Answer from the rows', text: 'plain part', html: '<p>html part</p>',
          attachments: [
            { filename: 'b.txt', content_type: 'text/plain', content: Buffer.from('second?').toString('base64') },
            { filename: 'a.csv', content_type: 'text/csv', content: Buffer.from('x,y\n1,2\n').toString('base64') },
          ],
          labels: ['l1', 'l2'], metadata: { lead: 7, tags: ['x'] }, idempotency_key: 'answer-rows',
        };
        const sent = await m.api('POST', `/v1/inboxes/${inbox.id}/messages`, { ...body, trace_id: 'trc_answer_rows' });
        assert.equal(sent.status, 202, JSON.stringify(sent.body));
        assert.equal(sent.body.delivery.status, 'queued');
        assert.ok(sent.body.delivery.scheduled_at, 'held by the limit');
        assert.deepEqual(sent.body.attachments.map((a: any) => a.filename), ['b.txt', 'a.csv']);
        assert.deepEqual(sent.body.delivery.recipients.map((r: any) => r.kind).sort(), ['bcc', 'cc', 'to', 'to']);
        const got = await m.api('GET', `/v1/messages/${sent.body.id}`);
        assert.equal(got.status, 200);
        assert.deepEqual(sent.body, got.body);
        const replay = await m.api('POST', `/v1/inboxes/${inbox.id}/messages`, body);
        assert.equal(replay.headers.get('idempotent-replayed'), 'true');
        assert.deepEqual(replay.body, sent.body);
      } finally {
        assert.equal((await m.api('DELETE', `/v1/limits/${policy.id}`)).status, 204);
      }
    });

    test('direct MX: a domain without MX records is reached through its A record', async () => {
      const before = mx.messages.length;
      const r = await m.api('POST', `/v1/inboxes/${inbox.id}/messages`, { to: 'someone@implicit.example', subject: 'implicit', text: 'x' });
      assert.equal(r.status, 202);
      const [got] = (await mx.waitFor(before + 1)).slice(before);
      assert.deepEqual(got.to, ['someone@implicit.example']);
      await waitForStatus(m, r.body.id, 'sent');
    });

    test('direct MX: a domain that does not exist is a hard bounce (5.1.2), not a retry', async () => {
      const r = await m.api('POST', `/v1/inboxes/${inbox.id}/messages`, { to: 'x@no-such-domain.example', subject: 'nx', text: 'x' });
      const done = await waitForStatus(m, r.body.id, 'bounced');
      assert.match(done.delivery.recipients[0].response, /5\.1\.2/);
    });

    test('local: mail to an inbox on our own domain arrives in it through the inbound pipeline, and the reply threads back', async () => {
      const other = (await m.api('POST', '/v1/inboxes', { username: 'researcher' })).body;
      const r = await m.api('POST', `/v1/inboxes/${inbox.id}/messages`, { to: other.address, subject: 'Handoff: lead 42', text: 'Please research lead 42.' });
      assert.equal(r.status, 202);
      const [received] = await waitForMessages(m, other.id, 1);
      assert.equal(received.subject, 'Handoff: lead 42');
      assert.equal(received.from.address, inbox.address);
      assert.equal(received.message_id, r.body.message_id);
      const sent = await waitForStatus(m, r.body.id, 'sent');
      assert.equal(sent.delivery.recipients[0].transport, 'local');
      // What arrived is the signed message: after the receiving Received: header, the DKIM signature verifies.
      const raw = (await m.api('GET', `/v1/messages/${received.id}/raw`)).bytes;
      assert.match(raw.toString('latin1'), /^Received: [^]*?\r\nDKIM-Signature: /);
      if (dkimpyAvailable()) assert.ok(dkimpyVerify(raw, await dkimRecord(m, 'mailroom.test')).ok, 'DKIM of the locally delivered copy');
      // The receiving agent replies; the reply lands in the sender's inbox, in the original thread.
      const reply = await m.api('POST', `/v1/messages/${received.id}/reply`, { text: 'Done: notes attached.' });
      assert.equal(reply.status, 202, JSON.stringify(reply.body));
      assert.equal(reply.body.subject, 'Re: Handoff: lead 42');
      assert.equal(reply.body.in_reply_to, r.body.message_id);
      const inSender = await waitFor(async () => {
        const list = (await m.api('GET', `/v1/inboxes/${inbox.id}/messages?direction=inbound`)).body.data;
        return list.find((x: any) => x.in_reply_to === r.body.message_id);
      }, 20_000, 'the reply in the sender inbox');
      assert.equal(inSender.thread_id, r.body.thread_id, 'the reply joined the thread of the original outbound message');
    });

    test('domains: POST /v1/domains returns the records to publish; verify reads them through the configured DNS', async () => {
      const created = await m.api('POST', '/v1/domains', { name: 'Brand.Example' });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.equal(created.body.name, 'brand.example');
      assert.equal((await m.api('POST', '/v1/domains', { name: 'brand.example' })).status, 200, 'adding it again returns it');
      const recs = Object.fromEntries(created.body.records.map((r: any) => [r.purpose, r]));
      assert.equal(recs.inbound.value, 'mx.mailroom.test');
      assert.match(recs.spf.value, /^v=spf1 /);
      assert.match(recs.dkim.name, /^mr\d{6}\._domainkey\.brand\.example$/);
      assert.match(recs.dmarc.value, /^v=DMARC1; p=none/);

      // Nothing published yet: not verified, each record missing.
      let v = (await m.api('POST', '/v1/domains/brand.example/verify')).body;
      assert.equal(v.verified, false);
      assert.deepEqual([v.verification.spf, v.verification.dkim, v.verification.dmarc], ['missing', 'missing', 'missing']);
      // Published, but with a stale DKIM key: still not verified.
      dns.set('brand.example', [{ type: 'MX', exchange: 'mx.mailroom.test', priority: 10 }, { type: 'TXT', value: recs.spf.value }]);
      dns.set(recs.dkim.name, [{ type: 'TXT', value: 'v=DKIM1; k=rsa; p=AAAAstale' }]);
      dns.set('_dmarc.brand.example', [{ type: 'TXT', value: recs.dmarc.value }]);
      v = (await m.api('POST', '/v1/domains/brand.example/verify')).body;
      assert.deepEqual([v.verification.mx, v.verification.spf, v.verification.dkim, v.verification.dmarc, v.verified], ['pass', 'pass', 'missing', 'pass', false]);
      // The right key (a long TXT value, split into 255-octet strings by the DNS server): verified.
      dns.set(recs.dkim.name, [{ type: 'TXT', value: recs.dkim.value }]);
      v = (await m.api('POST', '/v1/domains/brand.example/verify')).body;
      assert.equal(v.verified, true, JSON.stringify(v.verification));
      assert.ok(v.verified_at);
      // A lookup that fails is an error, not "missing".
      dns.fail('_dmarc.brand.example');
      v = (await m.api('POST', '/v1/domains/brand.example/verify')).body;
      assert.equal(v.verification.dmarc, 'error');
      assert.equal(v.verified, false);
    });

    test('local: an unknown address on our own domain bounces at once (5.1.1)', async () => {
      const r = await m.api('POST', `/v1/inboxes/${inbox.id}/messages`, { to: 'ghost@mailroom.test', subject: 'boo', text: 'x' });
      const done = await waitForStatus(m, r.body.id, 'bounced');
      assert.equal(done.delivery.recipients[0].bounce_reason, 'userunknown');
    });

    test('reply to a received message: In-Reply-To, References, Re: subject, same thread, sent to Reply-To', async () => {
      const c = await SmtpClient.connect(m.smtpPort);
      await c.cmd('EHLO lead.example.net');
      const parentId = '<parent-1@example.net>';
      const data = message({ from: 'Lead <lead@example.net>', to: inbox.address, subject: 'Question about pricing', messageId: parentId, headers: ['Reply-To: Lead Desk <desk@example.net>', 'References: <root@example.net>'] });
      assert.equal((await c.send('lead@example.net', [inbox.address], data)).data?.code, 250);
      await c.quit();
      const parent = await waitFor(async () => (await m.api('GET', `/v1/inboxes/${inbox.id}/messages?direction=inbound`)).body.data.find((x: any) => x.message_id === parentId), 20_000, 'the inbound message');
      const before = mx.messages.length;
      const r = await m.api('POST', `/v1/messages/${parent.id}/reply`, { text: 'Here are our prices.' });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      assert.equal(r.body.thread_id, parent.thread_id);
      assert.deepEqual(r.body.to.map((x: any) => x.address), ['desk@example.net']);
      const sent = await waitForStatus(m, r.body.id, ['sent', 'bounced', 'failed', 'deferred']);
      assert.equal(sent.delivery.status, 'sent', JSON.stringify(sent.delivery));
      const [got] = (await mx.waitFor(before + 1)).slice(before);
      assert.deepEqual(got.to, ['desk@example.net'], 'a reply goes to Reply-To when there is one');
      assert.equal(headerOf(got.raw, 'In-Reply-To'), parentId);
      assert.equal(headerOf(got.raw, 'References'), `<root@example.net> ${parentId}`);
      assert.equal(headerOf(got.raw, 'Subject'), 'Re: Question about pricing');
      const thread = (await m.api('GET', `/v1/threads/${parent.thread_id}`)).body;
      assert.deepEqual(thread.messages.map((x: any) => x.direction), ['inbound', 'outbound']);
    });

    test('I8 hard bounce at RCPT (550 5.1.1), no retry: bounced + userunknown, the address is suppressed, a later send to it is refused', async () => {
      const r = await m.api('POST', `/v1/inboxes/${inbox.id}/messages`, { to: 'nobody@example.net', subject: 'hello', text: 'x' });
      assert.equal(r.status, 202);
      const done = await waitForStatus(m, r.body.id, 'bounced');
      const rc = done.delivery.recipients[0];
      assert.equal(rc.bounce_type, 'hard');
      assert.equal(rc.bounce_reason, 'userunknown');
      assert.match(rc.response, /550/);
      const sup = (await m.api('GET', '/v1/suppressions?address=nobody@example.net')).body.data;
      assert.equal(sup.length, 1);
      assert.equal(sup[0].reason, 'hard_bounce');
      assert.ok(sup[0].source_event_id);
      const again = await m.api('POST', `/v1/inboxes/${inbox.id}/messages`, { to: 'Nobody <NOBODY@example.net>', subject: 'follow-up', text: 'x' });
      assert.equal(again.status, 422);
      assert.equal(again.body.code, 'recipient_suppressed');
      // With another, deliverable recipient the message goes, and the suppressed one is marked.
      const mixed = await m.api('POST', `/v1/inboxes/${inbox.id}/messages`, { to: ['nobody@example.net', 'lead@example.net'], subject: 'mixed', text: 'x' });
      assert.equal(mixed.status, 202);
      const st = Object.fromEntries(mixed.body.delivery.recipients.map((x: any) => [x.address, x.status]));
      assert.deepEqual(st, { 'nobody@example.net': 'suppressed', 'lead@example.net': 'queued' });
      // Removing the suppression allows sending again.
      assert.equal((await m.api('DELETE', `/v1/suppressions/${sup[0].id}`)).status, 204);
      assert.equal((await m.api('POST', `/v1/inboxes/${inbox.id}/messages`, { to: 'nobody@example.net', subject: 'x', text: 'x' })).status, 202);
    });

    test('a suppression added while a message is queued cancels it, with a message.suppressed event', async () => {
      // A recipient domain whose lookups fail (SERVFAIL) keeps the message deferred in the queue.
      dns.fail('slow.example');
      const r = await m.api('POST', `/v1/inboxes/${inbox.id}/messages`, { to: 'later@slow.example', subject: 'follow-up', text: 'x' });
      await waitForStatus(m, r.body.id, 'deferred');
      const s = await m.api('POST', '/v1/suppressions', { address: 'later@slow.example', reason: 'unsubscribe' });
      assert.equal(s.status, 201);
      const done = await waitForStatus(m, r.body.id, 'suppressed');
      assert.equal(done.delivery.recipients[0].status, 'suppressed');
      const ev = await m.store.db.selectFrom('events').select(['type', 'data']).where('message_id', '=', r.body.id).where('type', '=', 'message.suppressed').execute();
      assert.equal(ev.length, 1);
    });
  });

  describe(`${engine}: sending through a relay`, { skip: await skipEngine(engine) }, () => {
    let m: TestMailroom;
    let relay: Sink;
    let calls = 0;
    before(async () => {
      relay = await startSink({
        auth: { user: 'agent', pass: 's3cret' },
        // A relay's certificate is verified (credentials go to it); this one has none to offer.
        starttls: false,
        // The first attempt of "retry@" is refused with a 4xx; the next one is accepted.
        rcpt: (a) => (a.startsWith('retry@') && calls++ === 0 ? { code: 451, message: '4.7.1 Greylisted, try again later' } : null),
      });
      m = await startTestMailroom(engine, { MAILROOM_SMTP_RELAY_URL: `smtp://agent:s3cret@127.0.0.1:${relay.port}`, MAILROOM_SEND_RETRY_BASE_SECONDS: '1' });
    });
    after(async () => {
      await m?.destroy();
      await relay?.close();
    });

    test('relay: authenticated, pooled; the message arrives with headers and a valid DKIM signature', async () => {
      const inbox = (await m.api('POST', '/v1/inboxes', { username: 'relayed' })).body;
      const ids = [];
      for (let i = 0; i < 3; i++) {
        const r = await m.api('POST', `/v1/inboxes/${inbox.id}/messages`, { to: `user${i}@gmail.example`, subject: `relay ${i}`, text: `body ${i}` });
        assert.equal(r.status, 202);
        ids.push(r.body.id);
      }
      const got = await relay.waitFor(3);
      assert.deepEqual(got.map((g) => headerOf(g.raw, 'Subject')).sort(), ['relay 0', 'relay 1', 'relay 2']);
      if (dkimpyAvailable()) {
        for (const g of got) assert.ok(dkimpyVerify(g.raw, await dkimRecord(m, 'mailroom.test')).ok);
      }
      for (const id of ids) {
        const d = await waitForStatus(m, id, 'sent');
        assert.equal(d.delivery.recipients[0].transport, 'relay');
      }
    });

    test('I8 a 4xx at RCPT defers the message; it is retried with backoff and then sent, with the same Message-ID', async () => {
      const inbox = (await m.api('POST', '/v1/inboxes', { username: 'retrier' })).body;
      const r = await m.api('POST', `/v1/inboxes/${inbox.id}/messages`, { to: 'retry@example.org', subject: 'try twice', text: 'x' });
      const deferred = await waitForStatus(m, r.body.id, 'deferred');
      assert.match(deferred.delivery.recipients[0].response, /451/);
      assert.ok(deferred.delivery.scheduled_at, 'the next attempt time is shown');
      const sent = await waitForStatus(m, r.body.id, 'sent', 30_000);
      assert.equal(sent.delivery.recipients[0].attempts, 2);
      const copies = relay.messages.filter((g) => g.to.includes('retry@example.org'));
      assert.equal(copies.length, 1);
      assert.equal(headerOf(copies[0].raw, 'Message-ID'), r.body.message_id);
      const types = (await m.store.db.selectFrom('events').select('type').where('message_id', '=', r.body.id).orderBy('id').execute()).map((e) => e.type);
      assert.deepEqual(types, ['message.queued', 'message.deferred', 'message.sent']);
    });
  });

  describe(`${engine}: send requests refused before anything is queued`, { skip: await skipEngine(engine) }, () => {
    let m: TestMailroom;
    let inbox: { id: string; address: string };
    before(async () => {
      m = await startTestMailroom(engine, { MAILROOM_MAX_SEND_SIZE: String(200_000) });
      inbox = (await m.api('POST', '/v1/inboxes', { username: 'strict' })).body;
    });
    after(async () => { await m?.destroy(); });

    const cases: [string, Record<string, unknown>, number, string][] = [
      ['CR/LF in the subject', { to: 'a@example.net', subject: 'hi\r\nBcc: victim@example.org', text: 'x' }, 400, 'header_injection'],
      ['LF in a display name', { to: '"Eve\nBcc: v@example.org" <a@example.net>', text: 'x' }, 400, 'header_injection'],
      ['CR/LF in a custom header value', { to: 'a@example.net', headers: { 'X-Tag': 'a\r\nBcc: v@example.org' }, text: 'x' }, 400, 'header_injection'],
      ['a non-X custom header', { to: 'a@example.net', headers: { Bcc: 'v@example.org' }, text: 'x' }, 400, 'invalid_header'],
      ['a Content-Type override', { to: 'a@example.net', headers: { 'Content-Type': 'text/html' }, text: 'x' }, 400, 'invalid_header'],
      ['no @', { to: 'not-an-address', text: 'x' }, 400, 'invalid_address'],
      ['two addresses in one string', { to: 'a@example.net, b@example.net', text: 'x' }, 400, 'invalid_address'],
      ['an address literal', { to: 'a@[127.0.0.1]', text: 'x' }, 400, 'invalid_address'],
      ['a bare host', { to: 'root@localhost', text: 'x' }, 400, 'invalid_address'],
      ['no recipient', { subject: 'x', text: 'x' }, 400, 'invalid_address'],
      ['an attachment over the size limit', { to: 'a@example.net', attachments: [{ filename: 'big.bin', content: Buffer.alloc(300_000).toString('base64') }] }, 400, 'message_too_large'],
      ['an attachment that is not base64', { to: 'a@example.net', attachments: [{ filename: 'x.txt', content: 'not base64 !!' }] }, 400, 'invalid_attachment'],
      ['a line break in an attachment name', { to: 'a@example.net', attachments: [{ filename: 'x\r\n.txt', content: 'eA==' }] }, 400, 'header_injection'],
      ['an unknown field', { to: 'a@example.net', text: 'x', priority: 'high' }, 400, 'invalid_request'],
    ];
    for (const [name, body, status, code] of cases) {
      test(`S16 ${name} → ${status} ${code}, nothing stored or queued`, async () => {
        const before = await outboundCount(m);
        const r = await m.api('POST', `/v1/inboxes/${inbox.id}/messages`, body);
        assert.equal(r.status, status, JSON.stringify(r.body));
        assert.equal(r.body.code, code, r.body.detail);
        assert.equal(await outboundCount(m), before);
      });
    }

    test('a body far over the limit is refused by the HTTP layer (message_too_large), nothing queued', async () => {
      const before = await outboundCount(m);
      const r = await m.api('POST', `/v1/inboxes/${inbox.id}/messages`, { to: 'a@example.net', text: 'x'.repeat(400_000) });
      assert.equal(r.status, 400);
      assert.equal(r.body.code, 'message_too_large');
      assert.equal(await outboundCount(m), before);
    });

    test('a token without messages:send cannot send (403); one restricted to another inbox gets 404', async () => {
      const ro = (await m.api('POST', '/v1/tokens', { scopes: ['messages:read'] })).body.token;
      assert.equal((await m.api('POST', `/v1/inboxes/${inbox.id}/messages`, { to: 'a@example.net', text: 'x' }, ro)).status, 403);
      const other = (await m.api('POST', '/v1/inboxes', { username: 'other-inbox' })).body;
      const scoped = (await m.api('POST', '/v1/tokens', { scopes: ['messages:send', 'messages:read'], inbox_ids: [other.id] })).body.token;
      assert.equal((await m.api('POST', `/v1/inboxes/${inbox.id}/messages`, { to: 'a@example.net', text: 'x' }, scoped)).status, 404);
      assert.equal((await m.api('POST', `/v1/inboxes/${other.id}/messages`, { to: 'a@example.net', text: 'x' }, scoped)).status, 202);
    });
  });
}
