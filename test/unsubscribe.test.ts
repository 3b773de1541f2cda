import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ENGINES, skipEngine, startTestMailroom, waitFor, type TestMailroom } from './helpers/mailroom.ts';
import { dkimpyAvailable, dkimpyVerify } from './helpers/dkim.ts';
import { startSink, type Sink } from './helpers/sink.ts';
import { headerOf, SmtpClient } from './helpers/smtp.ts';

/**
 * Unsubscribe (issue 3): marketing sends carry List-Unsubscribe with a signed token and
 * List-Unsubscribe-Post (RFC 8058); the one-click POST and the mailto: address both suppress the
 * recipient for the sending inbox. GET never unsubscribes (link scanners follow GETs).
 */
for (const engine of ENGINES) {
  describe(`${engine}: one-click and mailto unsubscribe`, { skip: await skipEngine(engine) }, () => {
    let m: TestMailroom;
    let relay: Sink;
    before(async () => {
      relay = await startSink({ starttls: false });
      m = await startTestMailroom(engine, { MAILROOM_SMTP_RELAY_URL: `smtp://127.0.0.1:${relay.port}` });
    });
    after(async () => {
      await m?.destroy();
      await relay?.close();
    });

    async function sendMarketing(inboxId: string, to: string, marketing?: boolean) {
      const r = await m.api('POST', `/v1/inboxes/${inboxId}/messages`, { to, subject: 'Our offer', text: 'Buy', ...(marketing === undefined ? {} : { marketing }) });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      const got = await waitFor(async () => relay.messages.find((x) => headerOf(x.raw, 'Message-ID') === r.body.message_id), 20_000, 'the message at the relay');
      return { id: r.body.id as string, raw: got.raw };
    }

    test('one-click: List-Unsubscribe + List-Unsubscribe-Post, DKIM-signed; GET shows a form and changes nothing; POST suppresses for that inbox', async () => {
      const inbox = (await m.api('POST', '/v1/inboxes', { username: 'newsletter', marketing: true })).body;
      assert.equal(inbox.marketing, true);
      const { raw } = await sendMarketing(inbox.id, 'reader@example.org');
      const lu = headerOf(raw, 'List-Unsubscribe')!;
      assert.equal(headerOf(raw, 'List-Unsubscribe-Post'), 'List-Unsubscribe=One-Click');
      const https = /<(http[^>]+)>/.exec(lu)![1];
      assert.match(lu, /<mailto:unsubscribe\+msg_[0-9a-z]{26}\.[0-9a-f]{16}@mailroom\.test>/);
      const signed = /\bh=([^;]*)/.exec(headerOf(raw, 'DKIM-Signature')!)![1].split(':').map((h) => h.trim().toLowerCase());
      assert.ok(signed.includes('list-unsubscribe') && signed.includes('list-unsubscribe-post'), `RFC 8058 §4: both headers are signed (h=${signed})`);
      if (dkimpyAvailable()) {
        const rec = (await m.api('GET', '/v1/domains/mailroom.test')).body.records.find((r: any) => r.purpose === 'dkim').value;
        assert.ok(dkimpyVerify(raw, rec).ok);
      }

      const get = await fetch(https);
      assert.equal(get.status, 200);
      assert.match(await get.text(), /<form method="post"/);
      assert.equal((await m.api('GET', '/v1/suppressions?address=reader@example.org')).body.data.length, 0, 'a GET never unsubscribes');

      const post = await fetch(https, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'List-Unsubscribe=One-Click' });
      assert.equal(post.status, 200);
      const sup = (await m.api('GET', '/v1/suppressions?address=reader@example.org')).body.data;
      assert.equal(sup.length, 1);
      assert.deepEqual([sup[0].scope, sup[0].scope_value, sup[0].reason], ['inbox', inbox.id, 'unsubscribe']);
      assert.equal((await fetch(https, { method: 'POST', body: 'List-Unsubscribe=One-Click' })).status, 200, 'a second click is fine');

      const again = await m.api('POST', `/v1/inboxes/${inbox.id}/messages`, { to: 'reader@example.org', text: 'more' });
      assert.equal(again.status, 422);
      assert.equal(again.body.code, 'recipient_suppressed');
      // Only this inbox's mail is stopped: another inbox may still write to the address.
      const other = (await m.api('POST', '/v1/inboxes', { username: 'support' })).body;
      assert.equal((await m.api('POST', `/v1/inboxes/${other.id}/messages`, { to: 'reader@example.org', text: 'your ticket' })).status, 202);
      const events = await m.store.db.selectFrom('events').select('type').where('type', '=', 'message.unsubscribed').execute();
      assert.equal(events.length, 1);
    });

    test('a forged or altered token is refused (404) and suppresses nobody', async () => {
      const inbox = (await m.api('POST', '/v1/inboxes', { username: 'promo' })).body;
      const { raw } = await sendMarketing(inbox.id, 'keep@example.org', true);
      const url = /<(http[^>]+)>/.exec(headerOf(raw, 'List-Unsubscribe')!)![1];
      const forged = url.replace(/\.([0-9a-f]{16})$/, (_, mac: string) => `.${mac.slice(0, 15)}${mac[15] === '0' ? '1' : '0'}`);
      assert.equal((await fetch(forged, { method: 'POST', body: 'List-Unsubscribe=One-Click' })).status, 404);
      assert.equal((await fetch(url.replace(/msg_[0-9a-z]{26}/, 'msg_00000000000000000000000000'), { method: 'POST' })).status, 404);
      assert.equal((await m.api('GET', '/v1/suppressions?address=keep@example.org')).body.data.length, 0);
    });

    test('mailto: a mail to the unsubscribe+ address suppresses the recipient', async () => {
      const inbox = (await m.api('POST', '/v1/inboxes', { username: 'digest' })).body;
      const { raw } = await sendMarketing(inbox.id, 'mailer@example.org', true);
      const mailto = /<mailto:([^>]+)>/.exec(headerOf(raw, 'List-Unsubscribe')!)![1];
      const c = await SmtpClient.connect(m.smtpPort);
      await c.cmd('EHLO example.org');
      const r = await c.send('mailer@example.org', [mailto], Buffer.from(`From: mailer@example.org\r\nTo: ${mailto}\r\nSubject: unsubscribe\r\n\r\nunsubscribe\r\n`));
      assert.equal(r.data?.code, 250);
      await c.quit();
      const sup = await waitFor(async () => (await m.api('GET', '/v1/suppressions?address=mailer@example.org')).body.data[0], 20_000, 'the mailto unsubscribe');
      assert.equal(sup.reason, 'unsubscribe');
      assert.equal(sup.scope_value, inbox.id);
    });

    test('a non-marketing send has no List-Unsubscribe; a marketing send to two recipients is refused', async () => {
      const inbox = (await m.api('POST', '/v1/inboxes', { username: 'personal' })).body;
      const { raw } = await sendMarketing(inbox.id, 'friend@example.org');
      assert.equal(headerOf(raw, 'List-Unsubscribe'), null);
      const two = await m.api('POST', `/v1/inboxes/${inbox.id}/messages`, { to: ['a@example.org', 'b@example.org'], text: 'x', marketing: true });
      assert.equal(two.status, 400);
      assert.match(two.body.detail, /exactly one recipient/);
    });
  });
}
