import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { ENGINES, skipEngine, startTestMailroom, waitFor, waitForMessages, type TestMailroom, storedCounts } from './helpers/mailroom.ts';
import { SmtpClient, dotStuff, expectedStored, message, splitTrace } from './helpers/smtp.ts';

/**
 * SMTP resource limits (test plan §2): message size (S7), header section size, command and text
 * line length (S6), recipients per transaction (S8), connections per IP (S9). Real sockets, a real
 * Mailroom, both engines; the limits are set small through the environment.
 */

const MAX_SIZE = 200_000;
const MAX_HEADER = 10_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


async function connect(m: TestMailroom): Promise<SmtpClient> {
  const c = await SmtpClient.connect(m.smtpPort);
  assert.equal(c.greeting.code, 220, c.greeting.text);
  assert.equal((await c.cmd('EHLO client.example')).code, 250);
  return c;
}

async function createInbox(m: TestMailroom, username: string): Promise<{ id: string; address: string }> {
  const r = await m.api('POST', '/v1/inboxes', { username });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body;
}

/** A well-formed message of exactly `n` bytes (CRLF-terminated lines of at most 81 octets). */
function sized(n: number, to: string, subject: string): Buffer {
  const head = message({ to, subject, body: 'size test' });
  const rest = n - head.length;
  assert.ok(rest >= 0);
  let full = Math.floor(rest / 80);
  const rem = rest % 80;
  const tail: string[] = [];
  if (rem === 1) {
    full -= 1;
    tail.push(`${'w'.repeat(79)}\r\n`);
  } else if (rem >= 2) {
    tail.push(`${'z'.repeat(rem - 2)}\r\n`);
  }
  const out = Buffer.concat([head, Buffer.from(`${'y'.repeat(78)}\r\n`.repeat(full) + tail.join(''))]);
  assert.equal(out.length, n);
  return out;
}

async function rawOf(m: TestMailroom, messageId: string): Promise<Buffer> {
  return splitTrace((await m.api('GET', `/v1/messages/${messageId}/raw`)).bytes).body;
}

for (const engine of ENGINES) {
  describe(`${engine}: SMTP limits`, { skip: await skipEngine(engine) }, () => {
    let m: TestMailroom;
    before(async () => {
      m = await startTestMailroom(engine, { MAILROOM_MAX_MESSAGE_SIZE: String(MAX_SIZE), MAILROOM_MAX_HEADER_SIZE: String(MAX_HEADER) });
    });
    after(async () => { await m?.destroy(); });

    test('S7 SIZE: EHLO advertises SIZE N; MAIL FROM SIZE=N+1 is 552, SIZE=N is 250', async () => {
      const c = await SmtpClient.connect(m.smtpPort);
      const ehlo = await c.cmd('EHLO client.example');
      assert.match(ehlo.text, new RegExp(`^250[ -]SIZE ${MAX_SIZE}$`, 'm'));
      const over = await c.cmd(`MAIL FROM:<a@b.c> SIZE=${MAX_SIZE + 1}`);
      assert.equal(over.code, 552, over.text);
      assert.equal((await c.cmd('RCPT TO:<anyone@mailroom.test>')).code, 503, 'the refused MAIL opened no transaction');
      assert.equal((await c.cmd(`MAIL FROM:<a@b.c> SIZE=${MAX_SIZE}`)).code, 250);
      assert.equal((await c.cmd('RSET')).code, 250);
      await c.quit();
    });

    test('S7 SIZE: an undeclared body over the limit is 552 after DATA, nothing is stored, the connection goes on', async () => {
      const inbox = await createInbox(m, 'size-limit');
      const before = await storedCounts(m);
      const c = await connect(m);
      for (const n of [MAX_SIZE + 1, 1_000_000]) {
        const r = await c.send('s@example.com', [inbox.address], sized(n, inbox.address, `too big ${n}`));
        assert.equal(r.data?.code, 552, `${n} bytes: ${r.data?.text}`);
        assert.match(r.data!.text, /5\.3\.4/);
      }
      assert.deepEqual(await storedCounts(m), before, 'nothing stored for the oversized messages');

      // The same connection then delivers a message of exactly the limit, and a normal one.
      const atLimit = sized(MAX_SIZE, inbox.address, 'exactly at the limit');
      assert.equal((await c.send('s@example.com', [inbox.address], atLimit)).data?.code, 250);
      const normal = message({ to: inbox.address, subject: 'normal after oversize' });
      assert.equal((await c.send('s@example.com', [inbox.address], normal)).data?.code, 250);
      await c.quit();
      const msgs = await waitForMessages(m, inbox.id, 2);
      await sleep(300);
      const all = (await m.api('GET', `/v1/inboxes/${inbox.id}/messages?limit=200`)).body.data;
      assert.deepEqual(all.map((x: any) => x.subject).sort(), ['exactly at the limit', 'normal after oversize']);
      const byName = new Map(msgs.map((x: any) => [x.subject, x.id]));
      assert.ok((await rawOf(m, byName.get('exactly at the limit'))).equals(expectedStored(atLimit)));
    });

    test('header-section limit: a header section over MAILROOM_MAX_HEADER_SIZE is 552 and not stored; under it is 250', async () => {
      const inbox = await createInbox(m, 'header-limit');
      const pad = (count: number) => Array.from({ length: count }, (_, i) => `X-Pad-${String(i).padStart(3, '0')}: ${'h'.repeat(68)}`);
      const over = message({ to: inbox.address, subject: 'headers over', headers: pad(130) }); // ~11.1 KB of headers
      const headerOnly = Buffer.from(`${[`To: ${inbox.address}`, 'Subject: header only', ...pad(130)].join('\r\n')}\r\n`);
      const under = message({ to: inbox.address, subject: 'headers under', headers: pad(100) }); // ~8.6 KB
      // A big body is not a big header: the limit is on the header section alone.
      const bigBody = message({ to: inbox.address, subject: 'big body', body: `${'b'.repeat(76)}\r\n`.repeat(1500) });
      assert.ok(over.indexOf('\r\n\r\n') > MAX_HEADER && under.indexOf('\r\n\r\n') < MAX_HEADER && bigBody.length > 10 * MAX_HEADER);

      const before = await storedCounts(m);
      const c = await connect(m);
      for (const [name, data] of [['over', over], ['header only, no blank line', headerOnly]] as const) {
        const r = await c.send('s@example.com', [inbox.address], data);
        assert.equal(r.data?.code, 552, `${name}: ${r.data?.text}`);
        assert.match(r.data!.text, /header/i);
      }
      assert.deepEqual(await storedCounts(m), before);
      for (const data of [under, bigBody]) assert.equal((await c.send('s@example.com', [inbox.address], data)).data?.code, 250);
      await c.quit();
      const msgs = await waitForMessages(m, inbox.id, 2);
      await sleep(300);
      assert.equal((await m.api('GET', `/v1/inboxes/${inbox.id}/messages?limit=200`)).body.data.length, 2);
      const underMsg = msgs.find((x: any) => x.subject === 'headers under');
      assert.ok((await rawOf(m, underMsg.id)).equals(expectedStored(under)));
    });

    test('S6 line limits: a 600-octet command line is 500 5.5.2 and the connection stays usable; 512 octets is the limit', async () => {
      const inbox = await createInbox(m, 'line-limit');
      const c = await connect(m);
      // Lengths include the CRLF, as in RFC 5321 §4.5.3.1.4.
      const noop = (octets: number) => `NOOP ${'x'.repeat(octets - 'NOOP '.length - 2)}`;
      const long = await c.cmd(noop(600));
      assert.equal(long.code, 500, long.text);
      assert.match(long.text, /^500 5\.5\.2 /);
      assert.equal((await c.cmd('NOOP')).code, 250, 'connection still usable');
      assert.equal((await c.cmd(noop(512))).code, 250, 'exactly 512 octets is allowed');
      assert.equal((await c.cmd(noop(513))).code, 500, '513 octets is not');
      // A long MAIL FROM is refused as too long before any address parsing, and opens no transaction.
      const mail = await c.cmd(`MAIL FROM:<${'a'.repeat(580)}@example.com>`);
      assert.equal(mail.code, 500, mail.text);
      assert.equal((await c.cmd(`RCPT TO:<${inbox.address}>`)).code, 503);
      // A bare-LF-terminated long line is measured the same way.
      c.write(`${noop(600).slice(0, -1)}\n`);
      assert.equal((await c.read()).code, 500);
      const r = await c.send('s@example.com', [inbox.address], message({ to: inbox.address, subject: 'after long lines' }));
      assert.equal(r.data?.code, 250);
      await c.quit();
      await waitForMessages(m, inbox.id, 1);
    });

    test('S6 line limits: repeated over-long command lines end the session with 421 (like unknown commands); a huge line is cut cleanly', async () => {
      const c = await connect(m);
      const codes: number[] = [];
      for (let i = 0; i < 10; i++) codes.push((await c.cmd(`NOOP ${'x'.repeat(700)}`)).code);
      assert.deepEqual(codes, [...Array(9).fill(500), 421]);
      await waitFor(async () => c.closed, 5_000, 'the server to close the connection');

      // Beyond smtp-server's own 16 KB parser cap the line is not even buffered: 421 and close.
      const d = await connect(m);
      d.write(`NOOP ${'x'.repeat(20_000)}\r\n`);
      const r = await d.read();
      assert.equal(r.code, 421, r.text);
      await waitFor(async () => d.closed, 5_000, 'the server to close the connection');
      // The server itself is fine.
      const e = await connect(m);
      assert.equal((await e.cmd('NOOP')).code, 250);
      await e.quit();
    });

    test('S6 line limits: text lines of 1,001 and 10,000 octets are accepted and stored byte-identical (lines are not rewritten)', async () => {
      const inbox = await createInbox(m, 'long-text-lines');
      const data = Buffer.concat([
        message({ to: inbox.address, subject: 'long lines', body: 'L'.repeat(1001) }),
        Buffer.from(`${'M'.repeat(10_000)}\r\n.${'d'.repeat(1000)}\r\nend\r\n`),
      ]);
      const c = await connect(m);
      const r = await c.send('s@example.com', [inbox.address], data);
      assert.equal(r.data?.code, 250, r.data?.text);
      await c.quit();
      const [msg] = await waitForMessages(m, inbox.id, 1);
      assert.ok((await rawOf(m, msg.id)).equals(expectedStored(data)), 'stored exactly as sent, long lines included');
    });

    test('S8 recipients: 1,001 RCPT to distinct addresses → the first 100 are 250, the rest 452; one copy delivered', async () => {
      const inbox = await createInbox(m, 'many-rcpt');
      const c = await connect(m);
      const rcpts = Array.from({ length: 1001 }, (_, i) => `many-rcpt+${i}@mailroom.test`);
      // Pipelined in one write: the limit must hold however the commands arrive.
      c.write(`MAIL FROM:<s@example.com>\r\n${rcpts.map((r) => `RCPT TO:<${r}>\r\n`).join('')}`);
      assert.equal((await c.read()).code, 250);
      const replies = [];
      for (let i = 0; i < rcpts.length; i++) replies.push(await c.read());
      assert.deepEqual(replies.slice(0, 100).map((r) => r.code), Array(100).fill(250));
      assert.deepEqual([...new Set(replies.slice(100).map((r) => r.code))], [452]);
      assert.match(replies[100].text, /too many recipients/i);
      // A repeat of an accepted address is not a new recipient; a new one is still refused.
      assert.equal((await c.cmd('RCPT TO:<many-rcpt+0@mailroom.test>')).code, 250);
      assert.equal((await c.cmd('RCPT TO:<many-rcpt+5000@mailroom.test>')).code, 452);
      assert.equal((await c.cmd('DATA')).code, 354);
      c.write(dotStuff(message({ to: inbox.address, subject: 'to many' })));
      assert.equal((await c.read()).code, 250);
      await c.quit();
      await waitForMessages(m, inbox.id, 1);
      await sleep(300);
      assert.equal((await m.api('GET', `/v1/inboxes/${inbox.id}/messages?limit=200`)).body.data.length, 1, 'one inbox, one copy');
    });

    test('S8 recipients: 1,001 RCPT of the same address are all 250 (it stays one recipient); refused RCPTs do not count', async () => {
      const inbox = await createInbox(m, 'same-rcpt');
      const c = await connect(m);
      c.write(`MAIL FROM:<s@example.com>\r\n${`RCPT TO:<${inbox.address}>\r\n`.repeat(1001)}`);
      assert.equal((await c.read()).code, 250);
      const codes = new Set<number>();
      for (let i = 0; i < 1001; i++) codes.add((await c.read()).code);
      assert.deepEqual([...codes], [250]);
      // 150 unknown recipients are refused and take no slot: 99 more distinct ones still fit, the 100th not.
      for (let i = 0; i < 150; i++) assert.equal((await c.cmd(`RCPT TO:<nobody-${i}@mailroom.test>`)).code, 550);
      c.write(Array.from({ length: 100 }, (_, i) => `RCPT TO:<same-rcpt+${i}@mailroom.test>\r\n`).join(''));
      const more = [];
      for (let i = 0; i < 100; i++) more.push((await c.read()).code);
      assert.deepEqual(more, [...Array(99).fill(250), 452]);
      assert.equal((await c.cmd('DATA')).code, 354);
      c.write(dotStuff(message({ to: inbox.address, subject: 'same address' })));
      assert.equal((await c.read()).code, 250);
      await c.quit();
      await waitForMessages(m, inbox.id, 1);
      await sleep(300);
      assert.equal((await m.api('GET', `/v1/inboxes/${inbox.id}/messages?limit=200`)).body.data.length, 1);
    });
  });

  describe(`${engine}: SMTP connections per IP`, { skip: await skipEngine(engine) }, () => {
    let m: TestMailroom;
    before(async () => { m = await startTestMailroom(engine, { MAILROOM_MAX_CONNECTIONS_PER_IP: '5' }); });
    after(async () => { await m?.destroy(); });

    /** Connects from a chosen loopback address and returns the banner line. */
    async function bannerFrom(localAddress: string): Promise<{ socket: net.Socket; banner: string }> {
      const socket = net.connect({ port: m.smtpPort, host: '127.0.0.1', localAddress });
      socket.setEncoding('latin1');
      socket.on('error', () => {});
      let buf = '';
      const banner = await new Promise<string>((resolve, reject) => {
        socket.on('data', (d: string) => {
          buf += d;
          const nl = buf.indexOf('\n');
          if (nl >= 0) resolve(buf.slice(0, nl).trim());
        });
        socket.once('close', () => reject(new Error(`closed before a banner (${buf})`)));
      });
      return { socket, banner };
    }

    test('S9 per-IP cap: 5 connections from 127.0.0.1 are served, the 6th gets 421; 127.0.0.2 still gets 220; a freed slot is reusable', async () => {
      const open: SmtpClient[] = [];
      for (let i = 0; i < 5; i++) {
        const c = await SmtpClient.connect(m.smtpPort);
        assert.equal(c.greeting.code, 220, `connection ${i + 1}: ${c.greeting.text}`);
        open.push(c);
      }
      for (let i = 0; i < 3; i++) {
        const sixth = await SmtpClient.connect(m.smtpPort);
        assert.equal(sixth.greeting.code, 421, sixth.greeting.text);
        assert.match(sixth.greeting.text, /4\.7\.0 Too many connections from 127\.0\.0\.1/);
        await waitFor(async () => sixth.closed, 5_000, 'the refused connection to be closed');
      }
      // The capped connections are fully usable.
      assert.equal((await open[0].cmd('EHLO client.example')).code, 250);

      const other = await bannerFrom('127.0.0.2');
      assert.match(other.banner, /^220 /, 'another address is not affected by 127.0.0.1 being at its cap');
      other.socket.end('QUIT\r\n');

      // Close one: exactly one new connection from 127.0.0.1 fits again (refused ones took no slot).
      await open.shift()!.quit();
      const again = await waitFor(async () => {
        const c = await SmtpClient.connect(m.smtpPort);
        if (c.greeting.code === 220) return c;
        c.socket.destroy();
        return null;
      }, 10_000, 'a slot to free up for 127.0.0.1');
      open.push(again);
      const over = await SmtpClient.connect(m.smtpPort);
      assert.equal(over.greeting.code, 421, 'back at the cap');
      for (const c of open) await c.quit();
      // Once all are closed, the full allowance is back.
      await waitFor(async () => {
        const cs = await Promise.all(Array.from({ length: 5 }, () => SmtpClient.connect(m.smtpPort)));
        const ok = cs.every((c) => c.greeting.code === 220);
        for (const c of cs) c.socket.destroy();
        if (!ok) await sleep(100);
        return ok;
      }, 10_000, 'five slots for 127.0.0.1 again');
    });
  });
}
