import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { sendingStats } from '../src/outbound/stats.ts';
import type { Database } from '../src/store/schema.ts';
import { startDns, type TestDns } from './helpers/dns.ts';
import { ENGINES, skipEngine, startTestMailroom, TEST_DATABASE_URL, waitFor, type TestMailroom } from './helpers/mailroom.ts';
import { startSink, type Sink } from './helpers/sink.ts';
import { deliverOne } from './helpers/smtp.ts';

/**
 * The console's sending statistics (issue 8): GET /v1/stats/sending (recipient outcomes and the
 * bounce rate per UTC hour or day) and GET /v1/stats/throttles (recipient domains mail is waiting
 * for). Real sends over SMTP to a local sink that accepts, bounces or defers by address, a real
 * ARF complaint over SMTP; the numbers are compared with what was sent.
 */

/** An ARF complaint (RFC 5965) about a message we sent, as a mailbox provider mails it. */
const arf = (to: string, recipient: string, originalId: string) => Buffer.from([
  'From: abuse@mailbox-provider.example', `To: ${to}`, 'Subject: FW: Offer', 'MIME-Version: 1.0',
  'Content-Type: multipart/report; report-type=feedback-report; boundary="ARF"', '',
  '--ARF', 'Content-Type: text/plain', '', 'This is an email abuse report.', '',
  '--ARF', 'Content-Type: message/feedback-report', '', 'Feedback-Type: abuse', 'User-Agent: SomeGenerator/1.0', 'Version: 1', `Original-Rcpt-To: ${recipient}`, '',
  '--ARF', 'Content-Type: message/rfc822', '', `Message-ID: ${originalId}`, 'From: sender@mailroom.test', `To: ${recipient}`, 'Subject: Offer', '', 'Buy now.',
  '--ARF--', '',
].join('\r\n'));

const sum = (rows: any[], k: string) => rows.reduce((n, r) => n + r[k], 0);

for (const engine of ENGINES) {
  describe(`${engine}: sending statistics`, { skip: await skipEngine(engine) }, () => {
    let m: TestMailroom;
    let mx: Sink;
    let dns: TestDns;
    let inbox: { id: string; address: string };
    const ids: Record<string, string> = {};
    before(async () => {
      // The recipient's MX: gone@ does not exist (hard bounce), full@ is over quota (soft bounce),
      // everything at busy.example is deferred as a provider throttling us does.
      mx = await startSink({
        rcpt: (a) => a.startsWith('gone@') ? { code: 550, message: '5.1.1 <gone@example.net>: Recipient address rejected: User unknown' }
          : a.startsWith('full@') ? { code: 552, message: '5.2.2 Mailbox full' }
            : a.endsWith('@busy.example') ? { code: 421, message: '4.7.0 Too many connections from your IP, slow down' } : null,
      });
      dns = await startDns();
      for (const d of ['example.net', 'example.org', 'busy.example']) {
        dns.set(d, [{ type: 'MX', exchange: `mx.${d}`, priority: 10 }]);
        dns.set(`mx.${d}`, [{ type: 'A', address: '127.0.0.1' }]);
      }
      m = await startTestMailroom(engine, { MAILROOM_DNS_SERVERS: dns.server, MAILROOM_MX_PORT: String(mx.port) });
      inbox = (await m.api('POST', '/v1/inboxes', { username: 'stats' })).body;
      // One recipient per message, so each id is one recipient's outcome.
      const send = async (to: string) => {
        const r = await m.api('POST', `/v1/inboxes/${inbox.id}/messages`, { to, subject: `to ${to}`, text: 'Hello' });
        assert.equal(r.status, 202, JSON.stringify(r.body));
        return r.body.id as string;
      };
      for (const to of ['a@example.net', 'b@example.net', 'c@example.net', 'gone@example.net', 'full@example.net']) ids[to] = await send(to);
      await Promise.all(Object.values(ids).map((id) => waitFor(async () => {
        const s = (await m.api('GET', `/v1/messages/${id}`)).body.delivery?.status;
        return s === 'sent' || s === 'bounced';
      }, 20_000, `${id} final`)));
    });
    after(async () => {
      await m?.destroy();
      await mx?.close();
      await dns?.close();
    });

    test('GET /v1/stats/sending: sent, bounced (hard and soft), complained and the bounce rate, in UTC hour buckets with the quiet ones filled', async () => {
      const sent = (await m.api('GET', `/v1/messages/${ids['a@example.net']}`)).body;
      assert.equal(await deliverOne(m.smtpPort, '', `bounces+${sent.id}@mailroom.test`, arf(`bounces+${sent.id}@mailroom.test`, 'a@example.net', sent.message_id)), 250);
      await waitFor(async () => sum((await m.api('GET', '/v1/stats/sending')).body.data, 'complained') === 1, 20_000, 'the complaint counted');

      const r = await m.api('GET', '/v1/stats/sending?bucket=hour');
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const { data } = r.body;
      assert.equal(r.body.bucket, 'hour');
      assert.equal(data.length, 48, 'two days of hours by default, empty hours included');
      for (const [i, b] of data.entries()) {
        assert.match(b.start, /^\d{4}-\d\d-\d\dT\d\d:00:00\.000Z$/, 'buckets start on whole UTC hours');
        if (i) assert.equal(Date.parse(b.start) - Date.parse(data[i - 1].start), 3600_000);
      }
      assert.ok(Date.parse(data.at(-1).start) <= Date.now() && Date.now() < Date.parse(data.at(-1).start) + 3600_000, 'the last bucket is the current hour');
      // The sends of this test may straddle an hour boundary: compare the totals.
      assert.deepEqual([sum(data, 'sent'), sum(data, 'bounced'), sum(data, 'hard_bounced'), sum(data, 'complained')], [3, 2, 1, 1]);
      const busy = data.filter((b: any) => b.sent + b.bounced > 0);
      for (const b of busy) assert.equal(b.bounce_rate, b.bounced / (b.sent + b.bounced));
      for (const b of data.filter((x: any) => x.sent + x.bounced === 0)) assert.equal(b.bounce_rate, null);
      if (busy.length === 1) assert.equal(busy[0].bounce_rate, 2 / 5);

      // Narrowed to a sending domain: this inbox's domain has it all, another domain nothing.
      const mine = (await m.api('GET', '/v1/stats/sending?domain=mailroom.test')).body.data;
      assert.deepEqual([sum(mine, 'sent'), sum(mine, 'bounced'), sum(mine, 'complained')], [3, 2, 1]);
      const other = (await m.api('GET', '/v1/stats/sending?domain=agents.test')).body.data;
      assert.deepEqual([sum(other, 'sent'), sum(other, 'bounced'), sum(other, 'complained')], [0, 0, 0]);

      // Bad requests are problems, not 500s.
      assert.equal((await m.api('GET', '/v1/stats/sending?bucket=week')).status, 400);
      const tooMany = await m.api('GET', `/v1/stats/sending?bucket=hour&since=${new Date(Date.now() - 200 * 86400_000).toISOString()}`);
      assert.equal(tooMany.status, 400);
      assert.match(tooMany.body.detail, /at most 1000/);
      assert.equal((await m.api('GET', `/v1/stats/sending?since=${new Date(Date.now() + 86400_000).toISOString()}`)).status, 400);
    });

    test('day buckets are UTC days whatever the database session time zone (Kiritimati, UTC+14)', async () => {
      // A bounce at 23:30 UTC yesterday belongs to yesterday's UTC bucket. date_trunc in a UTC+14
      // session would put it in today's; the epoch arithmetic must not. (The row's time is moved:
      // the only way to have yesterday's data in a test that runs today.)
      const today = Math.floor(Date.now() / 86400_000) * 86400_000;
      const lateYesterday = new Date(today - 30 * 60_000);
      await m.store.db.updateTable('outbound_recipients').set({ updated_at: lateYesterday }).where('message_id', '=', ids['gone@example.net']).execute();
      const since = new Date(today - 2 * 86400_000).toISOString();

      const check = (data: any[], where: string) => {
        assert.equal(data.length, 3, where);
        assert.deepEqual(data.map((b) => b.start), [0, 1, 2].map((d) => new Date(today - (2 - d) * 86400_000).toISOString()), where);
        assert.deepEqual(data.map((b) => [b.sent, b.bounced, b.hard_bounced]), [[0, 0, 0], [0, 1, 1], [3, 1, 0]], where);
        assert.equal(data[1].bounce_rate, 1);
      };
      check((await m.api('GET', `/v1/stats/sending?bucket=day&since=${since}`)).body.data, 'API, server time zone');

      if (engine === 'pglite') {
        // One session: the API itself now runs in Kiritimati.
        await sql`SET TIME ZONE 'Pacific/Kiritimati'`.execute(m.store.db);
        try {
          check((await m.api('GET', `/v1/stats/sending?bucket=day&since=${since}`)).body.data, 'API, Kiritimati session');
        } finally {
          await sql`SET TIME ZONE 'UTC'`.execute(m.store.db);
        }
      } else {
        // A pool's sessions are Mailroom's own: the same query, through a pool whose sessions are in Kiritimati.
        const schema = m.store.postgres!.schema;
        const tzDb = new Kysely<Database>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: TEST_DATABASE_URL, max: 1, options: `-c search_path="${schema}" -c TimeZone=Pacific/Kiritimati` }) }) });
        try {
          assert.equal((await sql<{ tz: string }>`SELECT current_setting('TimeZone') AS tz`.execute(tzDb)).rows[0].tz, 'Pacific/Kiritimati');
          check((await sendingStats(tzDb, { bucket: 'day', since: new Date(since) })).data, 'query, Kiritimati session');
        } finally {
          await tzDb.destroy();
        }
      }
      await m.store.db.updateTable('outbound_recipients').set({ updated_at: new Date() }).where('message_id', '=', ids['gone@example.net']).execute();
    });

    test('GET /v1/stats/throttles: recipient domains held by a rate limit or deferred by their server', async () => {
      const limit = (await m.api('POST', '/v1/limits', { scope: 'recipient_domain', match: 'example.org', max: 1, window: 'day' })).body;
      const send = async (to: string) => (await m.api('POST', `/v1/inboxes/${inbox.id}/messages`, { to, subject: 'x', text: 'x' })).body;
      const first = await send('p1@example.org');
      await waitFor(async () => (await m.api('GET', `/v1/messages/${first.id}`)).body.delivery.status === 'sent', 20_000, 'the first to example.org');
      const held = await send('p2@example.org');
      assert.equal(held.delivery.status, 'queued');
      const busy = await send('q@busy.example');
      await waitFor(async () => (await m.api('GET', `/v1/messages/${busy.id}`)).body.delivery.status === 'deferred', 20_000, 'deferred by busy.example');

      const r = await m.api('GET', '/v1/stats/throttles');
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const by = Object.fromEntries(r.body.data.map((d: any) => [d.domain, d]));
      assert.deepEqual(Object.keys(by).sort(), ['busy.example', 'example.org'], 'only domains with mail waiting; example.net has none');
      assert.deepEqual([by['example.org'].held, by['example.org'].rate_limited, by['example.org'].deferred, by['example.org'].last_response], [1, 1, 0, null]);
      assert.ok(Date.parse(by['example.org'].next_attempt_at) > Date.now() + 23 * 3600_000, 'held until the day window frees');
      assert.deepEqual([by['busy.example'].held, by['busy.example'].rate_limited, by['busy.example'].deferred], [1, 0, 1]);
      assert.match(by['busy.example'].last_response, /421.*Too many connections/);
      assert.ok(Date.parse(by['busy.example'].next_attempt_at) > Date.now());

      // Once the limit is gone and the wait ends, the domain leaves the list.
      assert.equal((await m.api('DELETE', `/v1/limits/${limit.id}`)).status, 204);
      await m.store.db.updateTable('outbound_recipients').set({ next_attempt_at: new Date() }).where('message_id', '=', held.id).execute();
      assert.ok(!(await m.api('GET', '/v1/stats/throttles')).body.data.some((d: any) => d.domain === 'example.org'));
    });

    test('statistics are admin only, like the limits they sit beside', async () => {
      const token = (await m.api('POST', '/v1/tokens', { scopes: ['messages:read', 'messages:send'] })).body.token;
      for (const p of ['/v1/stats/sending', '/v1/stats/throttles']) {
        const r = await m.api('GET', p, undefined, token);
        assert.equal(r.status, 403, p);
        assert.equal(r.body.code, 'insufficient_scope');
      }
    });
  });
}
