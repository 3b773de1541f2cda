import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ENGINES, skipEngine, startTestMailroom, waitFor, type TestMailroom } from './helpers/mailroom.ts';
import { startDns, type TestDns } from './helpers/dns.ts';
import { startSink, type Sink } from './helpers/sink.ts';
import { deliverOne, SmtpClient } from './helpers/smtp.ts';

/**
 * Asynchronous reports (issue 3): a DSN (RFC 3464) or an ARF complaint (RFC 5965) arrives over
 * SMTP, hours after the send, at the VERP return path (or at the inbox, quoting the Message-ID).
 * It is matched to the send, classified, the address suppressed, and a follow-up still queued to
 * it is cancelled. Real SMTP both ways.
 */

function dsn(opts: { to: string; recipient: string; status: string; diagnostic: string; originalId: string; action?: string }): Buffer {
  return Buffer.from([
    'From: Mail Delivery System <MAILER-DAEMON@mx.example.net>',
    `To: ${opts.to}`,
    'Subject: Undelivered Mail Returned to Sender',
    'MIME-Version: 1.0',
    'Content-Type: multipart/report; report-type=delivery-status; boundary="BOUNDARY"',
    '',
    '--BOUNDARY',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    'I\'m sorry to have to inform you that your message could not be delivered.',
    '',
    '--BOUNDARY',
    'Content-Type: message/delivery-status',
    '',
    'Reporting-MTA: dns; mx.example.net',
    '',
    `Final-Recipient: rfc822; ${opts.recipient}`,
    `Action: ${opts.action ?? 'failed'}`,
    `Status: ${opts.status}`,
    `Diagnostic-Code: smtp; ${opts.diagnostic}`,
    '',
    '--BOUNDARY',
    'Content-Type: text/rfc822-headers',
    '',
    `Message-ID: ${opts.originalId}`,
    'From: sender@mailroom.test',
    `To: ${opts.recipient}`,
    'Subject: Offer',
    '',
    '--BOUNDARY--',
    '',
  ].join('\r\n'));
}

function arf(opts: { to: string; recipient: string; originalId: string }): Buffer {
  return Buffer.from([
    'From: abuse@mailbox-provider.example',
    `To: ${opts.to}`,
    'Subject: FW: Offer',
    'MIME-Version: 1.0',
    'Content-Type: multipart/report; report-type=feedback-report; boundary="ARF"',
    '',
    '--ARF',
    'Content-Type: text/plain',
    '',
    'This is an email abuse report.',
    '',
    '--ARF',
    'Content-Type: message/feedback-report',
    '',
    'Feedback-Type: abuse',
    'User-Agent: SomeGenerator/1.0',
    'Version: 1',
    `Original-Rcpt-To: ${opts.recipient}`,
    '',
    '--ARF',
    'Content-Type: message/rfc822',
    '',
    `Message-ID: ${opts.originalId}`,
    'From: sender@mailroom.test',
    `To: ${opts.recipient}`,
    'Subject: Offer',
    '',
    'Buy now.',
    '--ARF--',
    '',
  ].join('\r\n'));
}

const deliver = (m: TestMailroom, mailFrom: string, rcpt: string, data: Buffer) => deliverOne(m.smtpPort, mailFrom, rcpt, data);

for (const engine of ENGINES) {
  describe(`${engine}: asynchronous bounces and complaints`, { skip: await skipEngine(engine) }, () => {
    let m: TestMailroom;
    let mx: Sink;
    let dns: TestDns;
    let inbox: { id: string; address: string };
    const greylisted = new Set<string>();
    before(async () => {
      mx = await startSink({ rcpt: (a) => (greylisted.has(a) ? { code: 451, message: '4.7.1 greylisted' } : null) });
      dns = await startDns();
      dns.set('example.net', [{ type: 'MX', exchange: 'mx.example.net', priority: 10 }]);
      dns.set('mx.example.net', [{ type: 'A', address: '127.0.0.1' }]);
      m = await startTestMailroom(engine, { MAILROOM_DNS_SERVERS: dns.server, MAILROOM_MX_PORT: String(mx.port) });
      inbox = (await m.api('POST', '/v1/inboxes', { username: 'outreach' })).body;
    });
    after(async () => {
      await m?.destroy();
      await mx?.close();
      await dns?.close();
    });

    const send = async (to: string, subject: string) => {
      const r = await m.api('POST', `/v1/inboxes/${inbox.id}/messages`, { to, subject, text: 'Hello' });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      return r.body;
    };
    const delivery = async (id: string) => (await m.api('GET', `/v1/messages/${id}`)).body.delivery;
    const until = (id: string, pred: (d: any) => boolean, what: string) => waitFor(async () => { const d = await delivery(id); return pred(d) ? d : null; }, 20_000, what);

    test('a DSN at the VERP address: matched, hard bounce userunknown, suppressed, the queued follow-up cancelled', async () => {
      const first = await send('lead@example.net', 'Offer');
      await until(first.id, (d) => d.status === 'sent', 'the first message to be sent');
      // The follow-up cannot go yet (greylisted): it waits in the queue, deferred.
      greylisted.add('lead@example.net');
      const followUp = await send('lead@example.net', 'Following up');
      await until(followUp.id, (d) => d.status === 'deferred', 'the follow-up to be deferred');

      // Hours later the recipient's server gives up and sends a DSN to the return path.
      const code = await deliver(m, '', `bounces+${first.id}@mailroom.test`, dsn({
        to: `bounces+${first.id}@mailroom.test`, recipient: 'lead@example.net', status: '5.1.1',
        diagnostic: '550 5.1.1 <lead@example.net>: Recipient address rejected: User unknown in virtual mailbox table', originalId: first.message_id,
      }));
      assert.equal(code, 250);

      const d = await until(first.id, (x) => x.status === 'bounced', 'the first message to be marked bounced');
      assert.equal(d.recipients[0].bounce_type, 'hard');
      assert.equal(d.recipients[0].bounce_reason, 'userunknown');
      const sup = (await m.api('GET', '/v1/suppressions?address=lead@example.net')).body.data;
      assert.equal(sup.length, 1);
      assert.equal(sup[0].reason, 'hard_bounce');
      const f = await until(followUp.id, (x) => x.status === 'suppressed', 'the follow-up to be cancelled');
      assert.equal(f.recipients[0].status, 'suppressed');
      const types = (await m.store.db.selectFrom('events').select('type').where('message_id', 'in', [first.id, followUp.id]).orderBy('id').execute()).map((e) => e.type);
      assert.ok(types.includes('message.bounced') && types.includes('message.suppressed'), types.join(','));
      // The report itself is in the inbox, in the thread of nothing in particular but readable by the agent.
      const inboundList = (await m.api('GET', `/v1/inboxes/${inbox.id}/messages?direction=inbound`)).body.data;
      assert.ok(inboundList.some((x: any) => x.subject === 'Undelivered Mail Returned to Sender'));
      // And a later send is refused.
      const later = await m.api('POST', `/v1/inboxes/${inbox.id}/messages`, { to: 'lead@example.net', subject: 'again', text: 'x' });
      assert.equal(later.status, 422);
      assert.equal(later.body.code, 'recipient_suppressed');
    });

    test('an ARF complaint at the VERP address: message.complained, the address suppressed as complaint', async () => {
      const sent = await send('reader@example.net', 'Newsletter');
      await until(sent.id, (d) => d.status === 'sent', 'sent');
      assert.equal(await deliver(m, '', `bounces+${sent.id}@mailroom.test`, arf({ to: `bounces+${sent.id}@mailroom.test`, recipient: 'reader@example.net', originalId: sent.message_id })), 250);
      const ev = await waitFor(async () => (await m.store.db.selectFrom('events').selectAll().where('message_id', '=', sent.id).where('type', '=', 'message.complained').execute())[0], 20_000, 'a complaint event');
      assert.equal((ev.data as any).feedback_type, 'abuse');
      const sup = (await m.api('GET', '/v1/suppressions?address=reader@example.net')).body.data;
      assert.equal(sup[0]?.reason, 'complaint');
      assert.equal((await delivery(sent.id)).status, 'sent', 'a complaint does not unsend the message');
    });

    test('a DSN sent to the inbox address (null sender) is matched by the quoted Message-ID', async () => {
      const sent = await send('other@example.net', 'Hello other');
      await until(sent.id, (d) => d.status === 'sent', 'sent');
      assert.equal(await deliver(m, '', inbox.address, dsn({
        to: inbox.address, recipient: 'other@example.net', status: '5.2.2', diagnostic: '552 5.2.2 Mailbox full', originalId: sent.message_id,
      })), 250);
      const d = await until(sent.id, (x) => x.status === 'bounced', 'bounced');
      assert.equal(d.recipients[0].bounce_reason, 'mailboxfull');
    });

    test('an auto-reply at the VERP address is not a bounce; a VERP of no message of ours is refused', async () => {
      const sent = await send('vacationer@example.net', 'Hi');
      await until(sent.id, (d) => d.status === 'sent', 'sent');
      const ooo = Buffer.from([
        'From: vacationer@example.net', `To: bounces+${sent.id}@mailroom.test`, 'Subject: Out of office: Hi', 'Auto-Submitted: auto-replied',
        'Precedence: bulk', '', 'I am out of the office until Monday.', '',
      ].join('\r\n'));
      assert.equal(await deliver(m, '', `bounces+${sent.id}@mailroom.test`, ooo), 250);
      await waitFor(async () => (await m.api('GET', `/v1/inboxes/${inbox.id}/messages?direction=inbound`)).body.data.find((x: any) => x.subject === 'Out of office: Hi'), 20_000, 'the auto-reply');
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal((await delivery(sent.id)).status, 'sent');
      const c = await SmtpClient.connect(m.smtpPort);
      await c.cmd('EHLO x');
      await c.cmd('MAIL FROM:<>');
      const r = await c.cmd('RCPT TO:<bounces+msg_00000000000000000000000000@mailroom.test>');
      assert.equal(r.code, 550);
      assert.match(r.text, /5\.1\.1/);
      await c.quit();
    });
  });
}
