import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import nodemailer from 'nodemailer';
import { ENGINES, skipEngine, startTestMailroom, waitFor, waitForMessages, type TestMailroom, storedCounts } from './helpers/mailroom.ts';
import { SmtpClient, dotStuff, expectedStored, message, splitTrace } from './helpers/smtp.ts';

/**
 * SMTP protocol policy (test plan §2): who may receive mail (S10 open-relay matrix, deleted inboxes,
 * RCPT parameters), where DATA ends (S1/S2 smuggling), how command lines are split (S3), pipelining
 * (S4) and STARTTLS. Everything goes over real sockets to a real Mailroom, on both engines.
 */

/**
 * End-of-data variants from the SMTP-smuggling research scanner (SEC Consult / The-Login
 * SMTP-Smuggling-Tools @ 2d10d45, MIT), as in the shared corpus smtp-smuggling/eod_sequences.json;
 * inlined so the suite needs nothing outside the repository. All but the control must not end DATA.
 */
const SMUGGLING: { escaped: string; hex: string }[] = [
  { escaped: '\\n.\\n', hex: '0a2e0a' },
  { escaped: '\\n.\\r', hex: '0a2e0d' },
  { escaped: '\\r.\\n', hex: '0d2e0a' },
  { escaped: '\\r.\\r', hex: '0d2e0d' },
  { escaped: '\\n.\\r\\n', hex: '0a2e0d0a' },
  { escaped: '\\r.\\r\\n', hex: '0d2e0d0a' },
  { escaped: '\\r\\n.\\r\\r\\n', hex: '0d0a2e0d0d0a' },
  { escaped: '\\r\\r\\n.\\r\\r\\n', hex: '0d0d0a2e0d0d0a' },
  { escaped: '\\r\\n\\0.\\r\\n', hex: '0d0a002e0d0a' },
  { escaped: '\\r\\n.\\r\\n (control)', hex: '0d0a2e0d0a' },
];
const CONTROL = '0d0a2e0d0a';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


async function receiptsFrom(m: TestMailroom, mailFrom: string): Promise<number> {
  await (m.acceptor as { flush?: () => Promise<void> }).flush?.();
  const rows = await m.store.db.selectFrom('receipts').select('id').where('mail_from', '=', mailFrom).execute();
  return rows.length;
}

async function connect(m: TestMailroom, greeting = 'EHLO client.example'): Promise<SmtpClient> {
  const c = await SmtpClient.connect(m.smtpPort);
  assert.equal(c.greeting.code, 220, c.greeting.text);
  assert.equal((await c.cmd(greeting)).code, 250);
  return c;
}

async function createInbox(m: TestMailroom, username: string): Promise<{ id: string; address: string }> {
  const r = await m.api('POST', '/v1/inboxes', { username });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body;
}

/** Lists an inbox after a pause, so that a late (smuggled) message would have had time to show up. */
async function settledMessages(m: TestMailroom, inboxId: string, atLeast: number): Promise<any[]> {
  if (atLeast > 0) await waitForMessages(m, inboxId, atLeast);
  await (m.acceptor as { flush?: () => Promise<void> }).flush?.();
  await sleep(500);
  return (await m.api('GET', `/v1/inboxes/${inboxId}/messages?limit=200`)).body.data;
}

const RELAY_TRICKS = [
  'x@ext.com',
  '"x@ext.com"@mailroom.test',
  'x%ext.com@mailroom.test',
  'ext.com!x@mailroom.test',
  '@mailroom.test:x@ext.com',
  'x@[127.0.0.1]',
];

for (const engine of ENGINES) {
  describe(`${engine}: SMTP recipient policy, smuggling, pipelining`, { skip: await skipEngine(engine) }, () => {
    let m: TestMailroom;
    before(async () => { m = await startTestMailroom(engine); });
    after(async () => { await m?.destroy(); });

    test('S10 open-relay matrix: every relay trick is 550 5.7.1 with <> and with a local sender; unknown user 550 5.1.1; inbox and +tag 250; nothing stored', async () => {
      const inbox = await createInbox(m, 'relay-target');
      const before = await storedCounts(m);
      const c = await connect(m);
      for (const sender of ['', inbox.address]) {
        assert.equal((await c.cmd(`MAIL FROM:<${sender}>`)).code, 250, `MAIL FROM:<${sender}>`);
        for (const rcpt of RELAY_TRICKS) {
          const r = await c.cmd(`RCPT TO:<${rcpt}>`);
          assert.equal(r.code, 550, `RCPT TO:<${rcpt}> from <${sender}>: ${r.text}`);
          assert.match(r.text, /\b5\.7\.1\b/, `RCPT TO:<${rcpt}> from <${sender}>`);
        }
        // Only refused recipients so far: DATA has nobody to deliver to.
        const data = await c.cmd('DATA');
        assert.equal(data.code, 503, data.text);
        const unknown = await c.cmd('RCPT TO:<nobody-here@mailroom.test>');
        assert.equal(unknown.code, 550, unknown.text);
        assert.match(unknown.text, /\b5\.1\.1\b/);
        assert.equal((await c.cmd(`RCPT TO:<${inbox.address}>`)).code, 250);
        assert.equal((await c.cmd('RCPT TO:<relay-target+orders@mailroom.test>')).code, 250);
        assert.equal((await c.cmd('RSET')).code, 250);
      }
      await c.quit();
      assert.deepEqual(await storedCounts(m), before, 'no receipt and no delivery after relay attempts');
      assert.equal((await settledMessages(m, inbox.id, 0)).length, 0);
    });

    test('S10 open-relay matrix, more forms: case, look-alike domains, IPv6 literal → 5.7.1; syntax errors → 501; a source route to us is ignored', async () => {
      const inbox = await createInbox(m, 'relay-more');
      const before = await storedCounts(m);
      const c = await connect(m);
      assert.equal((await c.cmd('MAIL FROM:<>')).code, 250);
      for (const rcpt of ['X@EXT.COM', 'x@mailroom.test.ext.com', 'x@sub.mailroom.test', 'x@[IPv6:::1]', '@mailroom.test,@agents.test:x@ext.com']) {
        const r = await c.cmd(`RCPT TO:<${rcpt}>`);
        assert.equal(r.code, 550, `${rcpt}: ${r.text}`);
        assert.match(r.text, /\b5\.7\.1\b/, rcpt);
      }
      // smtp-server's address parser refuses these before Mailroom's policy sees them.
      for (const rcpt of ['x@ext.com@mailroom.test', 'x@ext.com.']) {
        const r = await c.cmd(`RCPT TO:<${rcpt}>`);
        assert.equal(r.code, 501, `${rcpt}: ${r.text}`);
      }
      assert.equal((await c.cmd('DATA')).code, 503);
      // RFC 5321 §4.1.2 / appendix C: a source route is ignored, so this is plain local delivery.
      assert.equal((await c.cmd(`RCPT TO:<@ext.com:${inbox.address}>`)).code, 250);
      assert.equal((await c.cmd('RSET')).code, 250);
      await c.quit();
      assert.deepEqual(await storedCounts(m), before);
    });

    test('S10 open-relay matrix: a relay attempt answered 5.7.1 stays refused through a full pipelined transaction', async () => {
      // A client that ignores the replies and pushes the whole transaction at once stores nothing either.
      const before = await storedCounts(m);
      const c = await connect(m);
      c.write(`MAIL FROM:<>\r\nRCPT TO:<x@ext.com>\r\nRCPT TO:<x%ext.com@mailroom.test>\r\nDATA\r\nQUIT\r\n`);
      const replies = [await c.read(), await c.read(), await c.read(), await c.read(), await c.read()];
      assert.deepEqual(replies.map((r) => r.code), [250, 550, 550, 503, 221]);
      assert.deepEqual(await storedCounts(m), before);
    });

    test('S10 deleting an inbox over the API: RCPT to its address (and sub-addresses) is 550 5.1.1 afterwards', async () => {
      const inbox = await createInbox(m, 'soon-gone');
      const c = await connect(m);
      assert.equal((await c.cmd('MAIL FROM:<s@example.com>')).code, 250);
      assert.equal((await c.cmd(`RCPT TO:<${inbox.address}>`)).code, 250);
      assert.equal((await c.cmd('RSET')).code, 250);

      const del = await m.api('DELETE', `/v1/inboxes/${inbox.id}`);
      assert.equal(del.status, 204);

      // Same connection (no per-session cache) and a fresh one.
      for (const client of [c, await connect(m)]) {
        assert.equal((await client.cmd('MAIL FROM:<s@example.com>')).code, 250);
        for (const rcpt of [inbox.address, 'soon-gone+tag@mailroom.test', 'SOON-GONE@MAILROOM.TEST']) {
          const r = await client.cmd(`RCPT TO:<${rcpt}>`);
          assert.equal(r.code, 550, `${rcpt}: ${r.text}`);
          assert.match(r.text, /\b5\.1\.1\b/);
        }
        await client.quit();
      }
    });

    test('S10 unknown RCPT parameters are refused with 555 and add no recipient', async () => {
      const inbox = await createInbox(m, 'params');
      const c = await connect(m);
      assert.equal((await c.cmd('MAIL FROM:<s@example.com>')).code, 250);
      for (const line of [
        `RCPT TO:<${inbox.address}> FOO=BAR`,
        `RCPT TO:<${inbox.address}> FOO`,
        `RCPT TO:<${inbox.address}> NOTIFY=NEVER X-SOMETHING=1`,
      ]) {
        const r = await c.cmd(line);
        assert.equal(r.code, 555, `${line}: ${r.text}`);
        assert.match(r.text, /5\.5\.4/);
      }
      const data = await c.cmd('DATA');
      assert.equal(data.code, 503, 'the refused RCPTs added no recipient');
      assert.equal((await c.cmd(`RCPT TO:<${inbox.address}>`)).code, 250, 'the same address without parameters is accepted');
      await c.quit();
    });

    test('S1/S2 smuggling: no non-CRLF end-of-data sequence ends DATA; the smuggled commands stay message data', async () => {
      const sequences = SMUGGLING.filter((s) => s.hex !== CONTROL);
      assert.ok(sequences.length >= 9, 'the corpus has the smtpsmug variants');
      const c = await connect(m);
      const sent: { hex: string; inboxId: string; data: Buffer; queuedAs: string }[] = [];
      for (const [i, s] of sequences.entries()) {
        const inbox = await createInbox(m, `smuggle-${i}`);
        const smuggled = `MAIL FROM:<ceo@victim.example>\r\nRCPT TO:<${inbox.address}>\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled\r\n`;
        // Written as an attacker's outbound relay would: not dot-stuffed, ended by the real terminator.
        const data = Buffer.concat([message({ to: inbox.address, subject: `carrier ${s.hex}` }), Buffer.from(s.hex, 'hex'), Buffer.from(smuggled, 'latin1')]);
        assert.equal((await c.cmd('MAIL FROM:<sender@example.com>')).code, 250);
        assert.equal((await c.cmd(`RCPT TO:<${inbox.address}>`)).code, 250);
        assert.equal((await c.cmd('DATA')).code, 354);
        c.write(Buffer.concat([data, Buffer.from('.\r\n')]));
        const r = await c.read();
        assert.equal(r.code, 250, `${s.escaped}: ${r.text}`);
        // The very next reply belongs to the next command: nothing was executed from inside the data.
        const noop = await c.cmd('NOOP');
        assert.equal(noop.code, 250, `${s.escaped}: ${noop.text}`);
        assert.match(noop.text, /^250 OK/, `${s.escaped}: no extra reply was queued`);
        sent.push({ hex: s.hex, inboxId: inbox.id, data, queuedAs: /queued as (rcv_\w+)/.exec(r.text)![1] });
      }
      await c.quit();

      for (const s of sent) await waitForMessages(m, s.inboxId, 1);
      await sleep(500); // time for a smuggled second message to show up, if there were one
      for (const s of sent) {
        const msgs = (await m.api('GET', `/v1/inboxes/${s.inboxId}/messages?limit=200`)).body.data;
        assert.equal(msgs.length, 1, `${s.hex}: exactly one message`);
        assert.equal(msgs[0].subject, `carrier ${s.hex}`);
        const raw = (await m.api('GET', `/v1/messages/${msgs[0].id}/raw`)).bytes;
        const { trace, body } = splitTrace(raw);
        assert.match(trace, new RegExp(`id ${s.queuedAs}\\b`));
        assert.ok(body.equals(expectedStored(s.data)), `${s.hex}: the smuggled commands are stored verbatim as data`);
        assert.ok(body.includes('MAIL FROM:<ceo@victim.example>\r\n'), `${s.hex}: smuggled text is in the body`);
      }
      assert.equal(await receiptsFrom(m, 'ceo@victim.example'), 0, 'no envelope from the smuggled MAIL FROM, ever');
    });

    test('S1/S2 smuggling control: the valid CRLF.CRLF does end DATA, so the detector above can see a smuggled message', async () => {
      const inbox = await createInbox(m, 'smuggle-control');
      const c = await connect(m);
      const carrier = message({ to: inbox.address, subject: 'carrier control' });
      const smuggled = `MAIL FROM:<ceo@victim.example>\r\nRCPT TO:<${inbox.address}>\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled\r\n`;
      assert.equal((await c.cmd('MAIL FROM:<sender@example.com>')).code, 250);
      assert.equal((await c.cmd(`RCPT TO:<${inbox.address}>`)).code, 250);
      assert.equal((await c.cmd('DATA')).code, 354);
      c.write(Buffer.concat([carrier, Buffer.from(CONTROL, 'hex'), Buffer.from(smuggled, 'latin1'), Buffer.from('.\r\n')]));
      const replies = [];
      for (let i = 0; i < 5; i++) replies.push((await c.read()).code);
      assert.deepEqual(replies, [250, 250, 250, 354, 250], 'first message ends at CRLF.CRLF; what follows runs as commands');
      await c.quit();
      const msgs = await settledMessages(m, inbox.id, 2);
      assert.equal(msgs.length, 2);
      assert.deepEqual(msgs.map((x: any) => x.subject).sort(), ['carrier control', 'smuggled']);
      assert.equal(await receiptsFrom(m, 'ceo@victim.example'), 1);
    });

    test('S3 bare LF / lone CR in commands: a lone CR never splits a line into two commands, no extra recipient', async () => {
      const first = await createInbox(m, 'cr-first');
      const second = await createInbox(m, 'cr-second');
      const c = await connect(m);

      // Documented policy: in command mode a bare LF ends a line (as Postfix's default "normalize"),
      // it is accepted as one command. Only DATA is strict (CRLF.CRLF alone ends it).
      c.write('MAIL FROM:<a@b.example>\n');
      assert.equal((await c.read()).code, 250, 'MAIL FROM ended by a bare LF is one command');

      // A lone CR is not a line end: the whole line is one RCPT whose trailing words are unknown
      // parameters, refused with 555; neither address is added.
      c.write(`RCPT TO:<${first.address}>\rRCPT TO:<${second.address}>\r\n`);
      const r = await c.read();
      assert.equal(r.code, 555, r.text);
      const noop = await c.cmd('NOOP');
      assert.match(noop.text, /^250 OK/, 'exactly one reply for the line with a lone CR');
      assert.equal((await c.cmd('DATA')).code, 503, 'no recipient was added by that line');

      // A lone CR after a complete MAIL command: one MAIL, the words after the CR are taken as MAIL
      // parameters and ignored (smtp-server ignores unknown MAIL parameters); no RCPT is executed.
      assert.equal((await c.cmd('RSET')).code, 250);
      c.write(`MAIL FROM:<a@b.example>\rRCPT TO:<${second.address}>\r\n`);
      assert.equal((await c.read()).code, 250);
      assert.match((await c.cmd('NOOP')).text, /^250 OK/, 'exactly one reply for the MAIL line with a lone CR');
      assert.equal((await c.cmd('DATA')).code, 503, 'the RCPT after the lone CR was not executed');

      // Inside one line a lone CR separates words like a space: this is ONE RCPT with a NOTIFY parameter.
      const notify = await c.cmd(`RCPT TO:<${first.address}>\rNOTIFY=NEVER`);
      assert.equal(notify.code, 250, notify.text);
      assert.match((await c.cmd('NOOP')).text, /^250 OK/);

      // Finish that transaction (to the first inbox only): the second one never receives anything.
      assert.equal((await c.cmd('DATA')).code, 354);
      c.write(dotStuff(message({ to: first.address, subject: 'after lone CR' })));
      assert.equal((await c.read()).code, 250);
      await c.quit();
      assert.equal((await settledMessages(m, first.id, 1)).length, 1);
      assert.equal((await settledMessages(m, second.id, 0)).length, 0, 'the address after a lone CR got nothing');
    });

    for (const greeting of ['EHLO client.example', 'HELO client.example']) {
      const mode = greeting.startsWith('EHLO') ? 'with PIPELINING negotiated (EHLO)' : 'without PIPELINING (HELO)';
      test(`S4 pipelining ${mode}: MAIL+RCPT+DATA+body+.+MAIL in one write is processed strictly in order, one message`, async () => {
        const inbox = await createInbox(m, `pipelined-${greeting.slice(0, 4).toLowerCase()}`);
        const c = await connect(m, greeting);
        const ehlo = greeting.startsWith('EHLO');
        const data = message({ to: inbox.address, subject: `pipelined ${greeting}` });
        c.write(Buffer.concat([
          Buffer.from(`MAIL FROM:<p@example.com>\r\nRCPT TO:<${inbox.address}>\r\nDATA\r\n`),
          dotStuff(data),
          Buffer.from('MAIL FROM:<q@example.com>\r\n'),
        ]));
        const replies = [];
        for (let i = 0; i < 5; i++) replies.push(await c.read());
        assert.deepEqual(replies.map((r) => r.code), [250, 250, 354, 250, 250], replies.map((r) => r.text).join(' | '));
        assert.match(replies[3].text, /queued as rcv_/);
        // The trailing MAIL opened a second, empty transaction: it has no recipient and sends nothing.
        assert.equal((await c.cmd('DATA')).code, 503);
        await c.quit();
        const msgs = await settledMessages(m, inbox.id, 1);
        assert.equal(msgs.length, 1, 'exactly one message');
        const raw = (await m.api('GET', `/v1/messages/${msgs[0].id}/raw`)).bytes;
        const { trace, body } = splitTrace(raw);
        assert.ok(body.equals(expectedStored(data)));
        // RFC 3848: a HELO session is plain SMTP in the trace, an EHLO session ESMTP.
        assert.match(trace, ehlo ? / with ESMTP id rcv_/ : / with SMTP id rcv_/);
        assert.equal(await receiptsFrom(m, 'q@example.com'), 0);
      });
    }

    test('STARTTLS: not advertised and refused when MAILROOM_TLS_CERT/KEY are not set', async () => {
      const c = await connect(m);
      const ehlo = await c.cmd('EHLO client.example');
      assert.equal(ehlo.code, 250);
      assert.doesNotMatch(ehlo.text, /STARTTLS/);
      const r = await c.cmd('STARTTLS');
      assert.equal(r.code, 500, r.text);
      await c.quit();
    });
  });

  // openssl is the only way to make an X.509 certificate here (node:crypto makes keys, not certificates).
  const tlsSkip = await (async () => {
    if (await skipEngine(engine)) return await skipEngine(engine);
    try {
      execFileSync('openssl', ['version'], { stdio: 'pipe' });
      return false;
    } catch {
      return 'openssl CLI not available: cannot generate a self-signed certificate';
    }
  })();

  describe(`${engine}: SMTP STARTTLS`, { skip: tlsSkip }, () => {
    let m: TestMailroom;
    let dir: string;
    before(async () => {
      dir = mkdtempSync(path.join(tmpdir(), 'mailroom-tls-'));
      const key = path.join(dir, 'key.pem');
      const cert = path.join(dir, 'cert.pem');
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=mx.mailroom.test'], { stdio: 'pipe' });
      m = await startTestMailroom(engine, { MAILROOM_TLS_CERT: cert, MAILROOM_TLS_KEY: key });
    });
    after(async () => {
      await m?.destroy();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    test('STARTTLS: advertised with a certificate; nodemailer (requireTLS) delivers; the trace says ESMTPS', async () => {
      const c = await connect(m);
      const ehlo = await c.cmd('EHLO client.example');
      assert.match(ehlo.text, /^250[ -]STARTTLS$/m);
      assert.doesNotMatch(ehlo.text, /AUTH/, 'no AUTH is offered, even over TLS');
      await c.quit();

      const inbox = await createInbox(m, 'tls-agent');
      const transport = nodemailer.createTransport({ host: '127.0.0.1', port: m.smtpPort, secure: false, requireTLS: true, tls: { rejectUnauthorized: false } });
      const info = await transport.sendMail({ from: 'tls@example.com', to: inbox.address, subject: 'over TLS', text: 'encrypted hello\n' });
      transport.close();
      assert.match(info.response, /^250 /);
      const [summary] = await waitForMessages(m, inbox.id, 1);
      assert.equal(summary.subject, 'over TLS');
      const { trace } = splitTrace((await m.api('GET', `/v1/messages/${summary.id}/raw`)).bytes);
      assert.match(trace, /by mx\.mailroom\.test \(Mailroom\) with ESMTPS id rcv_/);
      await (m.acceptor as { flush?: () => Promise<void> }).flush?.();
      const receipt = await waitFor(() => m.store.db.selectFrom('receipts').select('tls').where('mail_from', '=', 'tls@example.com').executeTakeFirst());
      assert.equal(receipt.tls, true);
    });

    test('STARTTLS: a plaintext session on the TLS-enabled server is traced as ESMTP, not ESMTPS', async () => {
      const inbox = await createInbox(m, 'plain-agent');
      const c = await connect(m);
      const r = await c.send('plain@example.com', [inbox.address], message({ to: inbox.address, subject: 'plain' }));
      assert.equal(r.data?.code, 250);
      await c.quit();
      const [summary] = await waitForMessages(m, inbox.id, 1);
      const { trace } = splitTrace((await m.api('GET', `/v1/messages/${summary.id}/raw`)).bytes);
      assert.match(trace, / with ESMTP id rcv_/);
    });
  });
}
