import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { messageKind, returnDate } from '../src/intel/kind.ts';
import { parseMessage } from '../src/mime/parse.ts';
import { ENGINES, skipEngine, startTestMailroom, waitFor, type TestMailroom } from './helpers/mailroom.ts';
import { SmtpClient } from './helpers/smtp.ts';

/**
 * Message kind (issue 4, item 4): human, auto_reply, out_of_office (with return date), bounce,
 * complaint, list, transactional — from RFC 3834 headers, report structure and text.
 */
const SISIMAI = path.resolve('../shared/corpora/sisimai-set-of-emails');

async function kindOf(raw: Buffer, mailFrom = 'someone@example.com') {
  return messageKind(await parseMessage(raw), raw, mailFrom);
}

const mail = (headers: string[], body = 'Hello, thanks for your note.') =>
  Buffer.from([...headers, 'Date: Wed, 25 Nov 2026 10:00:00 +0000', 'Message-ID: <k@example.com>', '', body, ''].join('\r\n'));

describe('message kind', () => {
  test('a person writing is human', async () => {
    const k = await kindOf(mail(['From: Ada <ada@example.com>', 'To: agent@mailroom.test', 'Subject: Re: pricing'], 'Sounds good, let us talk on Monday.'));
    assert.equal(k.kind, 'human');
    assert.equal(k.return_date, null);
  });

  test('out of office with Auto-Submitted and a stated return date; the date resolves against the message date', async () => {
    const k = await kindOf(mail(['From: bob@example.com', 'To: agent@mailroom.test', 'Subject: Out of Office: pricing', 'Auto-Submitted: auto-replied'],
      'I am out of the office until December 3 with limited access to email.'));
    assert.equal(k.kind, 'out_of_office');
    assert.equal(k.return_date, '2026-12-03');
    assert.ok(k.evidence.some((e) => /Auto-Submitted/.test(e)));
  });

  test('return dates in the usual forms', () => {
    const sent = new Date('2026-11-25T10:00:00Z');
    assert.equal(returnDate("I'm away until Monday, January 5", sent), '2027-01-05', 'a day already past this year is next year');
    assert.equal(returnDate('back on 7 December 2026', sent), '2026-12-07');
    assert.equal(returnDate('returning 2026-12-01', sent), '2026-12-01');
    assert.equal(returnDate('I will be back 12/02', sent), '2026-12-02');
    assert.equal(returnDate('I am travelling.', sent), null);
    assert.equal(returnDate('until February 30', sent), null, 'no such day');
  });

  test('an Exchange automatic reply (X-Auto-Response-Suppress + subject) without absence words is auto_reply', async () => {
    const k = await kindOf(mail(['From: desk@example.com', 'To: agent@mailroom.test', 'Subject: Automatic reply: your ticket', 'X-Auto-Response-Suppress: All'], 'We received your message and will answer within two days.'));
    assert.equal(k.kind, 'auto_reply');
  });

  test('a DSN is bounce, an ARF report is complaint, a list is list, a no-reply notification is transactional', async () => {
    const dsn = Buffer.from([
      'From: MAILER-DAEMON@mx.example.net', 'To: bounces+x@mailroom.test', 'Subject: Undelivered Mail', 'MIME-Version: 1.0',
      'Content-Type: multipart/report; report-type=delivery-status; boundary="b"', '', '--b', 'Content-Type: text/plain', '', 'failed', '',
      '--b', 'Content-Type: message/delivery-status', '', 'Reporting-MTA: dns; mx.example.net', '', 'Final-Recipient: rfc822; x@example.net',
      'Action: failed', 'Status: 5.1.1', 'Diagnostic-Code: smtp; 550 5.1.1 user unknown', '', '--b--', '',
    ].join('\r\n'));
    assert.equal((await kindOf(dsn, '')).kind, 'bounce');
    const arf = Buffer.from([
      'From: abuse@isp.example', 'To: agent@mailroom.test', 'Subject: complaint', 'MIME-Version: 1.0',
      'Content-Type: multipart/report; report-type=feedback-report; boundary="a"', '', '--a', 'Content-Type: text/plain', '', 'abuse report', '',
      '--a', 'Content-Type: message/feedback-report', '', 'Feedback-Type: abuse', 'Version: 1', '', '--a', 'Content-Type: message/rfc822', '',
      'From: agent@mailroom.test', 'Subject: offer', '', 'buy', '--a--', '',
    ].join('\r\n'));
    assert.equal((await kindOf(arf, '')).kind, 'complaint');
    assert.equal((await kindOf(mail(['From: news@lists.example.org', 'To: agent@mailroom.test', 'Subject: Weekly digest', 'List-Id: <digest.lists.example.org>']))).kind, 'list');
    assert.equal((await kindOf(mail(['From: no-reply@shop.example', 'To: agent@mailroom.test', 'Subject: Your receipt']))).kind, 'transactional');
  });

  test('corpus: sisimai vacation replies are auto_reply or out_of_office, the not-bounce samples are not bounces', { skip: existsSync(SISIMAI) ? false : 'corpus not found' }, async () => {
    for (const f of ['rfc3834-01.eml', 'rfc3834-03.eml', 'rfc3834-04.eml', 'rfc3834-05.eml']) {
      const p = path.join(SISIMAI, 'bsd', f);
      if (!existsSync(p)) continue;
      const k = await kindOf(readFileSync(p));
      assert.ok(['auto_reply', 'out_of_office'].includes(k.kind), `${f}: ${k.kind}`);
    }
    const away = await kindOf(readFileSync(path.join(SISIMAI, 'bsd', 'rfc3834-01.eml')));
    assert.equal(away.kind, 'out_of_office', 'Subject "Away until May 5"');
    assert.match(away.return_date ?? '', /-05-05$/);
    for (const f of ['is-not-bounce-01.eml', 'is-not-bounce-02.eml']) {
      const k = await kindOf(readFileSync(path.join(SISIMAI, 'not-bounce', f)));
      assert.notEqual(k.kind, 'bounce', f);
    }
  });
});

for (const engine of ENGINES) {
  describe(`${engine}: kind and return_date over SMTP and the API`, { skip: await skipEngine(engine) }, () => {
    let m: TestMailroom;
    before(async () => {
      m = await startTestMailroom(engine);
      await m.api('POST', '/v1/inboxes', { username: 'kinds' });
    });
    after(async () => { await m?.destroy(); });

    test('an out-of-office reply is listed with kind and return_date; the full message says why', async () => {
      const c = await SmtpClient.connect(m.smtpPort);
      await c.cmd('EHLO example.com');
      const r = await c.send('bob@example.com', ['kinds@mailroom.test'], mail(['From: bob@example.com', 'To: kinds@mailroom.test', 'Subject: Out of office', 'Auto-Submitted: auto-replied'], 'Away until December 3.'));
      assert.equal(r.data?.code, 250);
      await c.quit();
      const inbox = (await m.api('GET', '/v1/inboxes')).body.data[0];
      const [listed] = await waitFor(async () => { const l = (await m.api('GET', `/v1/inboxes/${inbox.id}/messages`)).body.data; return l.length ? l : null; }, 20_000, 'the message');
      assert.equal(listed.kind, 'out_of_office');
      assert.equal(listed.return_date, '2026-12-03');
      const full = (await m.api('GET', `/v1/messages/${listed.id}`)).body;
      assert.ok(full.kind_evidence.length > 0);
    });
  });
}
