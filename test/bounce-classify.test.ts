import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { classifyBounce, classifySmtpReply, type BounceReason } from '../src/outbound/bounces/classify.ts';
import { corporaRoot, corpusPresent, ratio, runCorpus, score } from '../src/outbound/bounces/corpus-eval.ts';

/**
 * The bounce classifier: exact verdicts for hand-written reports of each kind, the SMTP reply
 * table our own client relies on, and the scores on sisimai's labelled corpus.
 */

const crlf = (s: string): Buffer => Buffer.from(s.replace(/\r?\n/g, '\r\n'));

const DSN = `Return-Path: <>
Received: from mx.example.net by mail.example.com; Mon, 3 Mar 2025 10:00:02 +0000
From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: <agent@example.com>
Subject: Delivery Status Notification (Failure)
Date: Mon, 3 Mar 2025 10:00:01 +0000
Message-ID: <dsn-1@mx.example.net>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="=_dsn"

--=_dsn
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.net.

Your message could not be delivered to one or more recipients.

--=_dsn
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
Arrival-Date: Mon, 3 Mar 2025 09:59:58 +0000

Final-Recipient: rfc822; <Nobody@Example.ORG>
Original-Recipient: rfc822; nobody@example.org
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.example.org
Diagnostic-Code: smtp; 550 5.1.1 <nobody@example.org>: Recipient address
    rejected: User unknown in virtual mailbox table

Final-Recipient: rfc822; full@example.org
Action: delayed
Status: 4.2.2
Remote-MTA: dns; mx.example.org
Diagnostic-Code: smtp; 452 4.2.2 <full@example.org>: Mailbox full, try again later
Will-Retry-Until: Tue, 4 Mar 2025 09:59:58 +0000

--=_dsn
Content-Type: text/rfc822-headers

Return-Path: <bounces+abc@example.com>
From: Agent <agent@example.com>
To: nobody@example.org, full@example.org
Subject: Quarterly report
Message-ID: <msg-42@example.com>
Date: Mon, 3 Mar 2025 09:59:57 +0000

--=_dsn--
`;

const ARF = `From: Feedback Loop <fbl@isp.example>
To: abuse@example.com
Subject: FW: Quarterly report
Date: Tue, 4 Mar 2025 08:00:00 +0000
Message-ID: <arf-7@isp.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="arf"

--arf
Content-Type: text/plain

This is an email abuse report for an email message received from IP 192.0.2.1.

--arf
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: SomeGenerator/1.0
Version: 1
Original-Mail-From: <bounces+abc@example.com>
Original-Rcpt-To: <Reader@isp.example>
Arrival-Date: Mon, 3 Mar 2025 10:00:00 +0000
Source-IP: 192.0.2.1

--arf
Content-Type: message/rfc822

From: Agent <agent@example.com>
To: reader@isp.example
Subject: Quarterly report
Message-ID: <msg-43@example.com>

Hello.
--arf--
`;

const VACATION = `Return-Path: <>
From: Reader <reader@example.org>
To: agent@example.com
Subject: Out of Office: Quarterly report
Auto-Submitted: auto-replied
Date: Tue, 4 Mar 2025 08:00:00 +0000
Message-ID: <ooo-1@example.org>
In-Reply-To: <msg-42@example.com>
Content-Type: text/plain; charset=utf-8

I am out of the office until March 10 with limited access to email.
`;

const HUMAN = `From: Reader <reader@example.org>
To: agent@example.com
Subject: Re: Quarterly report
Date: Tue, 4 Mar 2025 08:00:00 +0000
Message-ID: <reply-1@example.org>
In-Reply-To: <msg-42@example.com>
Content-Type: text/plain; charset=utf-8

Thanks, the numbers look good. Could you also send the delivery figures for last year?
Some of the shipments could not be delivered on time, I think.
`;

// Postfix without a DSN part (notify_classes / old versions): the reason is only in the text.
const POSTFIX_TEXT = `Return-Path: <>
From: MAILER-DAEMON@mail.example.net (Mail Delivery System)
To: agent@example.com
Subject: Undelivered Mail Returned to Sender
Date: Wed, 5 Mar 2025 12:00:00 +0000
Message-ID: <pf-1@mail.example.net>
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mail.example.net.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

                   The mail system

<quota@example.org>: host mx.example.org[192.0.2.25] said: 552 5.2.2
    <quota@example.org>: Recipient address rejected: Mailbox full (in reply
    to RCPT TO command)

--- Below this line is a copy of the message.

From: agent@example.com
To: quota@example.org
Subject: Invoice
Message-ID: <msg-44@example.com>

Hello.
`;

describe('classifyBounce: exact verdicts', () => {
  test('RFC 3464 DSN with a failed and a delayed recipient', async () => {
    const v = await classifyBounce(crlf(DSN));
    assert.deepEqual(v, {
      kind: 'bounce',
      recipients: [
        {
          address: 'nobody@example.org', status: '5.1.1', reply_code: 550, reason: 'userunknown', hard: true,
          diagnostic: '550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown in virtual mailbox table',
        },
        {
          address: 'full@example.org', status: '4.2.2', reply_code: 452, reason: 'mailboxfull', hard: false,
          diagnostic: '452 4.2.2 <full@example.org>: Mailbox full, try again later',
        },
      ],
      original: { message_id: '<msg-42@example.com>', from: 'agent@example.com', to: 'nobody@example.org, full@example.org', subject: 'Quarterly report', return_path: 'bounces+abc@example.com' },
      feedback_type: null,
    });
  });

  test('the same DSN with LF and with CR-only line ends gives the same verdict', async () => {
    const expected = await classifyBounce(crlf(DSN));
    assert.deepEqual(await classifyBounce(Buffer.from(DSN)), expected);
    assert.deepEqual(await classifyBounce(Buffer.from(DSN.replace(/\n/g, '\r'))), expected);
  });

  test('a DSN whose recipients are all delayed is kind delayed', async () => {
    const onlyDelayed = DSN.replace(/Final-Recipient: rfc822; <Nobody[\s\S]*?virtual mailbox table\n\n/, '');
    const v = await classifyBounce(Buffer.from(onlyDelayed));
    assert.equal(v.kind, 'delayed');
    assert.deepEqual(v.recipients.map((r) => [r.address, r.reason, r.hard]), [['full@example.org', 'mailboxfull', false]]);
  });

  test('ARF complaint', async () => {
    const v = await classifyBounce(Buffer.from(ARF));
    assert.deepEqual(v, {
      kind: 'complaint',
      recipients: [{ address: 'reader@isp.example', status: null, reply_code: null, reason: 'undefined', hard: false, diagnostic: null }],
      original: { message_id: '<msg-43@example.com>', from: 'agent@example.com', to: 'reader@isp.example', subject: 'Quarterly report', return_path: null },
      feedback_type: 'abuse',
    });
  });

  test('RFC 3834 vacation reply', async () => {
    const v = await classifyBounce(Buffer.from(VACATION));
    assert.equal(v.kind, 'auto_reply');
    assert.deepEqual(v.recipients.map((r) => r.address), ['reader@example.org']);
    assert.equal(v.feedback_type, null);
  });

  test('a human reply that mentions delivery problems is not a bounce', async () => {
    const v = await classifyBounce(Buffer.from(HUMAN));
    assert.deepEqual(v, { kind: 'not_bounce', recipients: [], original: { message_id: null, from: null, to: null, subject: null, return_path: null }, feedback_type: null });
  });

  test('Postfix bounce without a DSN part', async () => {
    const v = await classifyBounce(Buffer.from(POSTFIX_TEXT));
    assert.equal(v.kind, 'bounce');
    assert.deepEqual(v.recipients, [{
      address: 'quota@example.org', status: '5.2.2', reply_code: 552, reason: 'mailboxfull', hard: false,
      diagnostic: '<quota@example.org>: host mx.example.org[192.0.2.25] said: 552 5.2.2 <quota@example.org>: Recipient address rejected: Mailbox full (in reply to RCPT TO command)',
    }]);
    assert.equal(v.original.message_id, '<msg-44@example.com>');
    assert.equal(v.original.to, 'quota@example.org');
  });

  test('garbage never throws and is not a bounce', async () => {
    const inputs: Buffer[] = [
      Buffer.alloc(0),
      Buffer.from([0, 1, 2, 255, 254, 0, 13, 10, 13]),
      Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7919) % 256)),
      Buffer.from('Content-Type: multipart/report; report-type=delivery-status; boundary="x"\n\n--x\nContent-Type: message/delivery-status\n\n'),
      Buffer.from(`Subject: ${'='.repeat(100_000)}\n\n${'x'.repeat(200_000)}`),
    ];
    for (const raw of inputs) {
      const v = await classifyBounce(raw);
      assert.equal(v.kind, 'not_bounce');
      assert.deepEqual(v.recipients, []);
    }
    // Not a Buffer at all (a caller bug) still does not throw.
    assert.equal((await classifyBounce(null as unknown as Buffer)).kind, 'not_bounce');
  });
});

describe('classifySmtpReply', () => {
  const table: [number, string | null, string, BounceReason, boolean][] = [
    [550, '5.1.1', 'The email account that you tried to reach does not exist.', 'userunknown', true],
    [550, null, '5.1.1 <x@example.org>: Recipient address rejected: User unknown in local recipient table', 'userunknown', true],
    [452, '4.2.2', 'The email account that you tried to reach is over quota.', 'mailboxfull', false],
    [552, '5.2.2', 'Mailbox full', 'mailboxfull', true],
    [554, '5.7.1', 'Message rejected: spam detected', 'spamdetected', true],
    [550, '5.7.1', 'Our system has detected that this message is likely unsolicited mail.', 'spamdetected', true],
    [421, null, 'Service not available, closing transmission channel', 'blocked', false],
    [421, '4.7.0', 'Try again later, closing connection. (EHLO) d9443c01a7336-1f2-20020a17 - gsmtp', 'blocked', false],
    [451, '4.7.650', 'The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation.', 'badreputation', false],
    [550, '5.7.26', 'Unauthenticated email from example.com is not accepted due to domain\'s DMARC policy', 'authfailure', true],
    [550, '5.7.1', 'Service unavailable; client [192.0.2.1] blocked using zen.spamhaus.org', 'blocked', true],
    [553, '5.1.2', 'We weren\'t able to find the recipient domain.', 'hostunknown', true],
    [552, '5.3.4', 'Message size exceeds fixed maximum message size', 'mesgtoobig', true],
    [550, '5.7.1', 'Relaying denied', 'norelaying', true],
    [451, '4.7.1', 'Please try again slower', 'speeding', false],
    [550, '5.7.25', 'The IP address sending this message does not have a PTR record setup', 'requireptr', true],
    [556, '5.1.10', 'Recipient address has null MX', 'notaccept', true],
    [530, '5.7.0', 'Must issue a STARTTLS command first.', 'failedstarttls', true],
    [550, '5.2.1', 'The email account that you tried to reach is disabled.', 'suspend', true],
  ];
  for (const [code, status, text, reason, hard] of table) {
    test(`${code} ${status ?? '-'} ${text.slice(0, 50)} → ${reason}/${hard ? 'hard' : 'soft'}`, () => {
      assert.deepEqual(classifySmtpReply(code, status, text), { reason, hard });
    });
  }
});

// $MAILROOM_CORPORA, ../shared/corpora beside the repository, or the shared tree at /work/shared.
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const candidates = [corporaRoot(repoRoot), '/work/shared/corpora'];
const corpora = candidates.find(corpusPresent) ?? candidates[0];
const skipCorpus: boolean | string = corpusPresent(corpora) ? false : `sisimai corpus not found (looked in ${candidates.join(', ')}; set MAILROOM_CORPORA)`;

describe('sisimai corpus', () => {
  test('detection, reason, not-bounce and auto-reply targets', { skip: skipCorpus, timeout: 20_000 }, async () => {
    const { results, notBounce } = await runCorpus(corpora);
    const rep = score(results, notBounce);
    assert.ok(rep.detection.total > 300, `expected the labelled samples, found ${rep.detection.total}`);
    assert.ok(ratio(rep.detection) >= 0.95, `detection ${rep.detection.hit}/${rep.detection.total}`);
    assert.ok(ratio(rep.reason) >= 0.9, `reason ${rep.reason.hit}/${rep.reason.total}`);
    assert.equal(rep.notBounce.total, 2);
    assert.deepEqual(rep.notBounce.files.map((f) => f.kind), ['not_bounce', 'not_bounce']);
    const vacations = results.filter((r) => r.rows.some((row) => row.reason === 'vacation'));
    assert.ok(vacations.length > 0);
    for (const r of vacations) assert.notEqual(r.verdict.kind, 'bounce', `${r.dir}/${r.file} counted as a bounce`);
  });
});
