import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import nodemailer from 'nodemailer';
import { ENGINES, skipEngine, startTestMailroom, waitFor, waitForMessages, type TestMailroom } from './helpers/mailroom.ts';
import { SmtpClient, expectedStored, message, splitTrace } from './helpers/smtp.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

for (const engine of ENGINES) {
  describe(`${engine}: inbox → SMTP → structured message`, { skip: await skipEngine(engine) }, () => {
    let m: TestMailroom;
    before(async () => { m = await startTestMailroom(engine); });
    after(async () => { await m?.destroy(); });

    test('a message sent with nodemailer over TCP is readable over the API with correct fields, attachment and raw', async () => {
      const created = await m.api('POST', '/v1/inboxes', { username: 'alice-agent', display_name: 'Alice Agent', metadata: { team: 'sales' } });
      assert.equal(created.status, 201);
      assert.equal(created.body.address, 'alice-agent@mailroom.test');
      const inbox = created.body;

      const attachment = randomBytes(50_000);
      const transport = nodemailer.createTransport({ host: '127.0.0.1', port: m.smtpPort, secure: false, ignoreTLS: true });
      const info = await transport.sendMail({
        from: '"Bob Sender" <bob@example.com>',
        to: inbox.address,
        cc: 'Carol <carol@example.org>',
        replyTo: 'replies@example.com',
        subject: 'Quarterly numbers — ünïcödé',
        text: 'Hello Alice,\nplease find the file attached.\n',
        html: '<p>Hello Alice,<br>please find the file attached.</p>',
        messageId: '<q3-numbers@example.com>',
        attachments: [{ filename: 'report.bin', content: attachment, contentType: 'application/octet-stream' }],
      });
      assert.match(info.response, /^250 /);
      transport.close();

      const [summary] = await waitForMessages(m, inbox.id, 1);
      const msg = (await m.api('GET', `/v1/messages/${summary.id}`)).body;
      assert.equal(msg.inbox_id, inbox.id);
      assert.equal(msg.direction, 'inbound');
      assert.deepEqual(msg.from, { address: 'bob@example.com', name: 'Bob Sender' });
      assert.deepEqual(msg.to.map((a: any) => a.address), [inbox.address]);
      assert.deepEqual(msg.cc, [{ address: 'carol@example.org', name: 'Carol' }]);
      assert.deepEqual(msg.reply_to.map((a: any) => a.address), ['replies@example.com']);
      assert.equal(msg.subject, 'Quarterly numbers — ünïcödé');
      assert.equal(msg.message_id, '<q3-numbers@example.com>');
      assert.equal(msg.text.trim(), 'Hello Alice,\nplease find the file attached.');
      assert.match(msg.html, /please find the file attached/);
      assert.ok(msg.date && !Number.isNaN(Date.parse(msg.date)));
      assert.ok(Date.parse(msg.received_at) <= Date.now());
      assert.ok(msg.headers.some((h: any) => h.name === 'Subject' && h.value === 'Quarterly numbers — ünïcödé'));
      assert.ok(msg.thread_id.startsWith('thr_'));
      assert.deepEqual(msg.parse_warnings, []);

      assert.equal(msg.attachments.length, 1);
      const att = msg.attachments[0];
      assert.equal(att.filename, 'report.bin');
      assert.equal(att.size, attachment.length);
      assert.equal(att.sha256, sha(attachment));
      const download = await m.api('GET', `/v1/messages/${msg.id}/attachments/${att.id}`);
      assert.equal(download.status, 200);
      assert.equal(sha(download.bytes), sha(attachment), 'attachment downloads byte-identical');
      assert.match(download.headers.get('content-disposition') ?? '', /report\.bin/);

      const raw = await m.api('GET', `/v1/messages/${msg.id}/raw`);
      assert.equal(raw.status, 200);
      assert.equal(raw.headers.get('content-type'), 'message/rfc822');
      const { trace, body } = splitTrace(raw.bytes);
      assert.match(trace, /^Received: from .*\s+by mx\.mailroom\.test \(Mailroom\) with ESMTP id rcv_/s);
      assert.equal(msg.size, raw.bytes.length);
      assert.match(body.toString('latin1'), /^Content-Type: multipart\/mixed/m);
      assert.match(body.toString('latin1'), /Message-ID: <q3-numbers@example.com>/);
    });

    test('the raw download is byte-identical to the DATA sent, after the prepended trace header', async () => {
      const inbox = (await m.api('POST', '/v1/inboxes', { username: 'raw-check' })).body;
      const data = Buffer.concat([
        message({ to: inbox.address, subject: 'bytes' }),
        Buffer.from('.leading dot line\r\nbare\nLF and bare\rCR, trailing spaces   \r\n\xff\xfe binary-ish\r\n', 'latin1'),
      ]);
      const c = await SmtpClient.connect(m.smtpPort);
      await c.cmd('EHLO client.example');
      const r = await c.send('sender@example.com', [inbox.address], data);
      assert.equal(r.data?.code, 250, r.data?.text);
      assert.match(r.data!.text, /queued as rcv_/);
      await c.quit();
      const [summary] = await waitForMessages(m, inbox.id, 1);
      const raw = (await m.api('GET', `/v1/messages/${summary.id}/raw`)).bytes;
      const { trace, body } = splitTrace(raw);
      assert.ok(trace.length > 0);
      assert.ok(body.equals(expectedStored(data)), 'stored bytes equal the bytes sent');
    });

    test('a sender cannot extend Mailroom\'s trace header with a leading continuation line', async () => {
      const inbox = (await m.api('POST', '/v1/inboxes', { username: 'trace-guard' })).body;
      const data = Buffer.concat([Buffer.from('\tfor <ceo@victim.example> (trusted);\r\n'), message({ to: inbox.address, subject: 'folded' })]);
      const c = await SmtpClient.connect(m.smtpPort);
      await c.cmd('EHLO client.example');
      assert.equal((await c.send('s@example.com', [inbox.address], data)).data?.code, 250);
      await c.quit();
      const [summary] = await waitForMessages(m, inbox.id, 1);
      const msg = (await m.api('GET', `/v1/messages/${summary.id}`)).body;
      assert.equal(msg.headers[0].name, 'Received');
      assert.match(msg.headers[0].value, /by mx\.mailroom\.test \(Mailroom\)/);
      assert.doesNotMatch(msg.headers[0].value, /victim/, 'our Received header holds only what Mailroom wrote');
      // The raw is still byte-exact.
      const raw = (await m.api('GET', `/v1/messages/${msg.id}/raw`)).bytes;
      assert.ok(raw.subarray(raw.length - expectedStored(data).length).equals(expectedStored(data)));
    });

    test('messages thread by In-Reply-To / References within an inbox', async () => {
      const inbox = (await m.api('POST', '/v1/inboxes', { username: 'threads' })).body;
      const other = (await m.api('POST', '/v1/inboxes', { username: 'threads-other' })).body;
      const c = await SmtpClient.connect(m.smtpPort);
      await c.cmd('EHLO client.example');
      const first = message({ to: inbox.address, subject: 'Plan', messageId: '<a1@example.com>' });
      const reply = message({ to: inbox.address, subject: 'Re: Plan', messageId: '<a2@example.com>', headers: ['In-Reply-To: <a1@example.com>', 'References: <a1@example.com>'] });
      const unrelated = message({ to: inbox.address, subject: 'Other', messageId: '<b1@example.com>' });
      // A reply to a message this inbox never saw, whose parent arrives afterwards: both share one thread.
      const orphanReply = message({ to: inbox.address, subject: 'Re: Late', messageId: '<c2@example.com>', headers: ['References: <c1@example.com>'] });
      const lateParent = message({ to: inbox.address, subject: 'Late', messageId: '<c1@example.com>' });
      for (const d of [first, reply, unrelated, orphanReply, lateParent]) {
        assert.equal((await c.send('s@example.com', [inbox.address], d)).data?.code, 250);
        // Each message must be ingested before the next, to exercise thread lookup across batches.
        await waitFor(async () => (await m.api('GET', `/v1/inboxes/${inbox.id}/messages`)).body.data.length >= 1);
      }
      // The same first message to another inbox threads separately there (threads are per inbox).
      assert.equal((await c.send('s@example.com', [other.address], first)).data?.code, 250);
      await c.quit();
      const msgs = await waitForMessages(m, inbox.id, 5);
      const byId = new Map(msgs.map((x: any) => [x.message_id, x]));
      assert.equal(byId.get('<a1@example.com>').thread_id, byId.get('<a2@example.com>').thread_id);
      assert.notEqual(byId.get('<a1@example.com>').thread_id, byId.get('<b1@example.com>').thread_id);
      assert.equal(byId.get('<c1@example.com>').thread_id, byId.get('<c2@example.com>').thread_id);
      const threads = (await m.api('GET', `/v1/inboxes/${inbox.id}/threads`)).body.data;
      assert.equal(threads.length, 3);
      const planThread = (await m.api('GET', `/v1/threads/${byId.get('<a1@example.com>').thread_id}`)).body;
      assert.equal(planThread.message_count, 2);
      assert.deepEqual(planThread.messages.map((x: any) => x.message_id), ['<a1@example.com>', '<a2@example.com>']);
      const [otherMsg] = await waitForMessages(m, other.id, 1);
      assert.notEqual(otherMsg.thread_id, byId.get('<a1@example.com>').thread_id);
      const filtered = (await m.api('GET', `/v1/inboxes/${inbox.id}/messages?thread_id=${planThread.id}`)).body.data;
      assert.equal(filtered.length, 2);
    });

    test('one transaction to several inboxes stores one copy per inbox, all from one receipt', async () => {
      const a = (await m.api('POST', '/v1/inboxes', { username: 'multi-a' })).body;
      const b = (await m.api('POST', '/v1/inboxes', { username: 'multi-b', domain: 'agents.test' })).body;
      const c = await SmtpClient.connect(m.smtpPort);
      await c.cmd('EHLO client.example');
      const r = await c.send('s@example.com', [a.address, b.address, 'multi-a+tag@mailroom.test'], message({ subject: 'to both' }));
      assert.deepEqual(r.rcpts.map((x) => x.code), [250, 250, 250]);
      assert.equal(r.data?.code, 250);
      await c.quit();
      const [ma] = await waitForMessages(m, a.id, 1);
      const [mb] = await waitForMessages(m, b.id, 1);
      assert.notEqual(ma.id, mb.id);
      assert.equal(ma.subject, 'to both');
      await new Promise((res) => setTimeout(res, 300));
      assert.equal((await m.api('GET', `/v1/inboxes/${a.id}/messages`)).body.data.length, 1, 'a sub-address of the same inbox does not duplicate');
      const rawA = (await m.api('GET', `/v1/messages/${ma.id}/raw`)).bytes;
      const rawB = (await m.api('GET', `/v1/messages/${mb.id}/raw`)).bytes;
      assert.ok(rawA.equals(rawB));
      assert.doesNotMatch(splitTrace(rawA).trace, /\bfor </, 'no recipient list in the trace of a multi-recipient message');
    });

    test('list filters: since, direction, cursor pagination', async () => {
      const inbox = (await m.api('POST', '/v1/inboxes', { username: 'paging' })).body;
      const c = await SmtpClient.connect(m.smtpPort);
      await c.cmd('EHLO client.example');
      for (let i = 0; i < 7; i++) assert.equal((await c.send('s@example.com', [inbox.address], message({ subject: `n${i}` }))).data?.code, 250);
      await c.quit();
      const all = await waitForMessages(m, inbox.id, 7);
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const q: string = cursor ? `&cursor=${cursor}` : '';
        const page: any = (await m.api('GET', `/v1/inboxes/${inbox.id}/messages?limit=3${q}`)).body;
        assert.ok(page.data.length <= 3);
        seen.push(...page.data.map((x: any) => x.id));
        cursor = page.next_cursor;
      } while (cursor);
      assert.deepEqual(seen, all.map((x: any) => x.id));
      assert.equal(new Set(seen).size, 7);
      const future = new Date(Date.now() + 60_000).toISOString();
      assert.equal((await m.api('GET', `/v1/inboxes/${inbox.id}/messages?since=${encodeURIComponent(future)}`)).body.data.length, 0);
      assert.equal((await m.api('GET', `/v1/inboxes/${inbox.id}/messages?direction=outbound`)).body.data.length, 0);
      assert.equal((await m.api('GET', `/v1/inboxes/${inbox.id}/messages?direction=sideways`)).status, 400);
      const bad = await m.api('GET', `/v1/inboxes/${inbox.id}/messages?cursor=nonsense`);
      assert.equal(bad.status, 400);
      assert.equal(bad.body.code, 'invalid_request');
    });
  });
}
