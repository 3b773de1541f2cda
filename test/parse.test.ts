import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import nodemailer from 'nodemailer';
import { DEFAULT_PARSE_LIMITS, parseMessage } from '../src/mime/parse.ts';

/**
 * Unit tests of parseMessage for the cases the SMTP-level tests (mime-robustness, corpora) found:
 * each used to make a message un-ingestable, hang a worker, or misreport. No database is involved,
 * so unlike the other files these do not loop over engines; the same cases go through both engines
 * in mime-robustness.test.ts.
 */

const LIMITS = { ...DEFAULT_PARSE_LIMITS, timeoutMs: 10_000 };
const msg = (lines: string[]) => Buffer.from(lines.join('\r\n'), 'latin1');
const HEAD = ['From: Sender <sender@example.com>', 'To: agent@mailroom.test', 'Subject: unit', 'Date: Tue, 06 Jan 2026 10:00:00 +0000', 'Message-ID: <unit@example.com>', 'MIME-Version: 1.0'];

describe('parseMessage', () => {
  test('a well-formed multipart message (nodemailer) has no parse_warnings', async () => {
    const transport = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'windows' });
    const info = await transport.sendMail({
      from: 'Sender <sender@example.com>', to: 'agent@mailroom.test', subject: 'Grüße', date: new Date('2026-01-06T10:00:00Z'), messageId: '<ok@example.com>',
      text: 'plain', html: '<p>html</p>',
      attachments: [{ filename: 'a.bin', content: Buffer.from([0, 1, 2]) }, { filename: 'b.txt', content: 'x'.repeat(500), contentTransferEncoding: 'quoted-printable' }],
    });
    const p = await parseMessage(info.message as Buffer, LIMITS);
    assert.deepEqual(p.warnings, []);
    assert.equal(p.subject, 'Grüße');
    assert.equal(p.attachments.length, 2);
  });

  test('S14 NUL in Content-Disposition is stripped like every other field (it made the attachment row un-insertable)', async () => {
    const p = await parseMessage(msg([...HEAD, 'Content-Type: multipart/mixed; boundary=zz', '', '--zz',
      'Content-Type: application/octet-stream', 'Content-Disposition: attach\x00ment; filename=a.bin', '', 'xyz', '--zz--', '']), LIMITS);
    assert.equal(p.attachments.length, 1);
    assert.equal(p.attachments[0].disposition, 'attachment');
    assert.ok(p.warnings.includes('nul_bytes_removed'));
  });

  test('S14 a lone surrogate from a decoder is replaced (the jsonb insert refused it)', async () => {
    // libmime's ISO-2022-JP decoder passes the UTF-8 encoding of U+DFFF through as a lone surrogate.
    const p = await parseMessage(msg([...HEAD.filter((h) => !h.startsWith('Subject')), 'Subject: =?ISO-2022-JP?Q?a=ED=BF=BFb?=', '', 'body', '']), LIMITS);
    assert.ok(p.subject!.isWellFormed() && p.headers.every((h) => h.value.isWellFormed()));
    assert.equal(p.subject, 'a\ufffdb');
    assert.ok(p.warnings.includes('lone_surrogates_replaced'));
  });

  test('S14 UTF-7 is never decoded (+ADw-script+AD4- must not turn into <script>), unknown charsets do not throw', async () => {
    const body = (cs: string) => msg([...HEAD, `Content-Type: text/plain; charset=${cs}`, '', '+ADw-script+AD4-alert(1)+ADw-/script+AD4- caf\xe9', '']);
    for (const cs of ['utf-7', 'UNICODE-1-1-UTF-7', 'x-no-such-charset', 'base64']) {
      const p = await parseMessage(body(cs), LIMITS);
      assert.doesNotMatch(p.text ?? '', /<script>/, cs);
      assert.match(p.text ?? '', /\+ADw-script\+AD4-/, cs);
    }
    const word = await parseMessage(msg([...HEAD.filter((h) => !h.startsWith('Subject')), 'Subject: =?utf-7?Q?+ADw-b+AD4-?=', '', 'x', '']), LIMITS);
    assert.doesNotMatch(word.subject ?? '', /<b>/);
  });

  test('Date: an unparsable or out-of-range date is null with invalid_date, not "now" nor a failing insert', async () => {
    const withDate = (d: string | null) => msg([...HEAD.filter((h) => !h.startsWith('Date')), ...(d === null ? [] : [`Date: ${d}`]), '', 'body', '']);
    const good = await parseMessage(withDate('Tue, 06 Jan 2026 10:00:00 +0100'), LIMITS);
    assert.equal(good.date?.toISOString(), '2026-01-06T09:00:00.000Z');
    assert.ok(!good.warnings.some((w) => w.endsWith('_date')));
    // mailparser turns "garbage" into the current time; -10000 does not fit a timestamptz.
    for (const bad of ['garbage', '-010000-01-01T00:00:00Z', '+275760-09-13T00:00:00Z', '']) {
      const p = await parseMessage(withDate(bad), LIMITS);
      assert.equal(p.date, null, `Date: ${bad}`);
      assert.ok(p.warnings.includes('invalid_date'), `Date: ${bad} → ${JSON.stringify(p.warnings)}`);
    }
    const none = await parseMessage(withDate(null), LIMITS);
    assert.equal(none.date, null);
    assert.ok(none.warnings.includes('missing_date'));
  });

  test('S14 input that ends inside the header block of an inline message/rfc822 part returns at once, not at the timeout', async () => {
    // mailparser waited for the 'end' of a stream nobody read: 30 s of an ingest worker per message.
    const cases = [
      [...HEAD, 'Content-Type: message/rfc822', 'Content-Disposition: inline'].join('\r\n'),
      [...HEAD, 'Content-Type: message/rfc822', 'Content-Disposition: inline', ''].join('\r\n'),
      [...HEAD, 'Content-Type: multipart/mixed; boundary="b"', '', '--b', 'Content-Type: message/rfc822', 'Content-Disposition: inline\r'].join('\r\n'),
    ];
    for (const c of cases) {
      const p = await parseMessage(Buffer.from(c), LIMITS);
      assert.ok(!p.warnings.includes('parse_timeout'), JSON.stringify(c));
      assert.equal(p.subject, 'unit');
    }
    // And the embedded message is still parsed when it is there.
    const whole = await parseMessage(msg([...HEAD, 'Content-Type: message/rfc822', 'Content-Disposition: inline', '', 'Subject: inner', '', 'inner body', '']), LIMITS);
    assert.match(whole.text ?? '', /inner body/);
  });

  test('malformed MIME is flagged: missing_final_boundary (also nested), unknown_transfer_encoding', async () => {
    const nested = (closeInner: boolean, closeOuter: boolean) => msg([...HEAD, 'Content-Type: multipart/mixed; boundary=outer', '', '--outer',
      'Content-Type: multipart/alternative; boundary=inner', '', '--inner', 'Content-Type: text/plain', '', 'text',
      ...(closeInner ? ['--inner--'] : []), ...(closeOuter ? ['--outer--'] : []), '']);
    assert.ok(!(await parseMessage(nested(true, true), LIMITS)).warnings.includes('missing_final_boundary'));
    assert.ok((await parseMessage(nested(false, true), LIMITS)).warnings.includes('missing_final_boundary'));
    assert.ok((await parseMessage(nested(true, false), LIMITS)).warnings.includes('missing_final_boundary'));
    // Trailing white space after a closing delimiter is allowed (RFC 2046 §5.1.1); LF line ends too.
    const lf = Buffer.from([...HEAD, 'Content-Type: multipart/mixed; boundary=b', '', '--b', '', 'x', '--b--  ', ''].join('\n'));
    assert.ok(!(await parseMessage(lf, LIMITS)).warnings.includes('missing_final_boundary'));

    const cte = (enc: string) => msg([...HEAD, 'Content-Type: text/plain', `Content-Transfer-Encoding: ${enc}`, '', 'body', '']);
    for (const ok of ['7bit', '8BIT', 'Base64', 'quoted-printable', 'binary (comment)']) {
      assert.ok(!(await parseMessage(cte(ok), LIMITS)).warnings.includes('unknown_transfer_encoding'), ok);
    }
    const garbage = await parseMessage(cte('x-gar\x01bage((('), LIMITS);
    assert.ok(garbage.warnings.includes('unknown_transfer_encoding'));
    assert.equal(garbage.text?.trim(), 'body', 'the content is kept as is');
  });

  test('S13 id bombs: ids over 998 bytes are dropped and References is cut to its first and last 99 (thread_refs could not take them)', async () => {
    const long = `<${'x'.repeat(4000)}@example.com>`;
    const refs = Array.from({ length: 5000 }, (_, i) => `<r${i}@example.com>`);
    const p = await parseMessage(msg([...HEAD.filter((h) => !h.startsWith('Message-ID')), `Message-ID: ${long}`, `In-Reply-To: ${long}`,
      `References: ${refs.join('\r\n ')} ${long}`, '', 'body', '']), LIMITS);
    assert.equal(p.message_id, null);
    assert.equal(p.in_reply_to, null);
    assert.equal(p.references.length, 100);
    assert.deepEqual([p.references[0], p.references[1], p.references[99]], ['<r0@example.com>', '<r4901@example.com>', '<r4999@example.com>']);
    assert.ok(p.warnings.includes('oversized_ids_dropped'));
    assert.ok(p.warnings.includes('references_truncated: 5000 to 100'), JSON.stringify(p.warnings));
  });

  test('S12 maxAttachments: the rest are dropped and counted', async () => {
    const parts = Array.from({ length: 30 }, (_, i) => [`--abcd`, 'Content-Type: a/b', `Content-Disposition: attachment; filename=f${i}`, '', `${i}`]).flat();
    const p = await parseMessage(msg([...HEAD, 'Content-Type: multipart/mixed; boundary=abcd', '', ...parts, '--abcd--', '']), { ...LIMITS, maxAttachments: 10 });
    assert.deepEqual(p.attachments.map((a) => a.filename), Array.from({ length: 10 }, (_, i) => `f${i}`));
    assert.ok(p.warnings.includes('attachments_dropped: 20 over the limit of 10'));
  });
});
