import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { MailroomError } from '../src/errors.ts';
import { generateDkimKey } from '../src/outbound/dkim.ts';
import { prepareSend, ThreadPreparer, type PrepareJob } from '../src/outbound/prepare.ts';

/**
 * Send preparation (outbound/prepare.ts) on a worker thread: what comes back is what the calling
 * thread would have produced — Buffers again, a MailroomError with its code and details for a
 * refused request — and a thread that dies fails only what it held.
 */
const key = generateDkimKey();
const job = (over: Partial<PrepareJob> = {}): PrepareJob => ({
  content: {
    to: ['"Ann Lee" <ann@example.net>'], cc: ['bob@example.net'], subject: 'Thread test', text: 'plain', html: '<p>html</p>',
    attachments: [{ filename: 'a.csv', content_type: 'text/csv', content: Buffer.from('x,y\n1,2\n').toString('base64') }],
    headers: { 'X-Campaign': 'c1' },
  },
  from: { address: 'agent@mailroom.test', name: 'Agent' },
  threading: { inReplyTo: '<parent@example.net>', references: ['<root@example.net>', '<parent@example.net>'] },
  maxSize: 1_000_000, traceId: 'trc_prepare', date: new Date('2026-12-04T12:00:00Z'),
  unsubscribe: null, dkim: { domain: 'mailroom.test', key }, ...over,
});

describe('send preparation on a worker thread', () => {
  const threads = new ThreadPreparer(1);
  after(() => threads.close());

  test('the thread answers what the calling thread would: signed raw, composed fields, parsed fields, Buffers', async () => {
    const [here, there] = await Promise.all([prepareSend(job()), threads.prepare(job())]);
    for (const b of [there.raw, there.parsed.attachments[0].content]) assert.ok(Buffer.isBuffer(b));
    assert.match(there.raw.toString('latin1'), /^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=mailroom\.test;/);
    // One DKIM-Signature field, then the composed message as it is (its own header fields first).
    const unsigned = there.raw.toString('latin1').replace(/^DKIM-Signature:[^\r\n]*(\r\n[ \t][^\r\n]*)*\r\n/, '');
    assert.doesNotMatch(unsigned, /DKIM-Signature/i, 'signature, then the composed bytes');
    assert.match(unsigned, new RegExp(`^(?:[^\r\n]+\r\n)*Message-ID: ${there.composed.messageId}\r\n`, 'm'));
    // The Message-ID, the MIME boundary and the signature's time differ from call to call; everything else is the same.
    const stable = (p: typeof here) => ({
      recipients: p.composed.recipients, subject: p.composed.subject, from: p.composed.from,
      parsed: { ...p.parsed, message_id: null, headers: p.parsed.headers.map((h) => ({ ...h, value: h.value.replace(/boundary="[^"]+"/, 'boundary') })).filter((h) => !/^(message-id|dkim-signature)$/i.test(h.name)) },
    });
    assert.deepEqual(stable(there), stable(here));
    assert.equal(there.parsed.attachments[0].content.toString(), 'x,y\n1,2\n');
    assert.deepEqual(there.parsed.references, ['<root@example.net>', '<parent@example.net>']);
  });

  test('a refused request comes back as the MailroomError the API maps (code, status, message, details)', async () => {
    const injected = threads.prepare(job({ content: { to: ['a@example.net'], subject: 'hi\r\nBcc: victim@example.org' } }));
    await assert.rejects(injected, (err: unknown) => err instanceof MailroomError && err.code === 'header_injection' && err.status === 400 && /subject/.test(err.message));
    const marketing = threads.prepare(job({ unsubscribe: { 'List-Unsubscribe': '<https://x.test/u/t>' } }));
    await assert.rejects(marketing, (err: unknown) => err instanceof MailroomError && err.code === 'invalid_request' && /exactly one recipient/.test(err.message));
    const here = await prepareSend(job({ content: { to: ['not an address'] } })).catch((e) => e);
    const there = await threads.prepare(job({ content: { to: ['not an address'] } })).catch((e) => e);
    assert.ok(there instanceof MailroomError);
    assert.deepEqual({ code: there.code, status: there.status, message: there.message, details: there.details }, { code: here.code, status: here.status, message: here.message, details: here.details });
  });

  test('a thread that dies fails the sends it held; the next send gets a fresh thread', async () => {
    await threads.prepare(job()); // a running thread
    await threads.crashForTest();
    const held = threads.prepare(job()); // a fresh thread, still loading its modules when it is ended
    await threads.crashForTest();
    await assert.rejects(held, /send preparation thread exited/);
    const next = await threads.prepare(job());
    assert.ok(next.raw.length > 0);
  });
});
