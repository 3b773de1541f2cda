import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { browserSkip, launchBrowser, openConsole, screenshotDir } from './helpers/browser.ts';
import { startDns, type TestDns } from './helpers/dns.ts';
import { startTestMailroom, waitFor, type TestMailroom } from './helpers/mailroom.ts';
import { startSink, type Sink } from './helpers/sink.ts';

/**
 * The console's sending health, domains and webhooks views (issue 8) end to end: a real headless
 * Chromium against a real running Mailroom that sends over real SMTP to a local sink (which
 * accepts, or refuses gone@ as a hard bounce), resolves through a local DNS server, and delivers
 * webhooks to a local HTTP receiver. Embedded engine only: the console reads nothing but the public
 * REST API and the event stream, which the API tests (test/stats.test.ts, limits, webhooks…) cover
 * on both engines; running the browser twice would only double the time.
 */
const skip = browserSkip();

interface Hit { id: string; body: any }

/** A webhook receiver on loopback answering 200, recording each request's webhook-id and body. */
async function startReceiver(): Promise<{ url: string; got: Hit[]; close: () => Promise<void> }> {
  const got: Hit[] = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      got.push({ id: String(req.headers['webhook-id']), body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/mailroom`, got,
    close: () => new Promise((r) => { server.close(() => r()); server.closeAllConnections(); }),
  };
}

/** Opens a view the way a person does: through the main navigation. */
async function openView(page: Page, link: string, heading: string): Promise<void> {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: link }).click();
  await page.getByRole('heading', { level: 1, name: heading }).waitFor();
}

/** The laptop screenshot, then the same page at a phone's width. */
async function shoot(page: Page, dir: string, name: string): Promise<void> {
  await page.screenshot({ path: path.join(dir, `${name}.png`), fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: path.join(dir, `${name}-phone.png`), fullPage: true });
  await page.setViewportSize({ width: 1280, height: 900 });
}

describe('console: sending health, domains and webhooks in a real browser', { skip }, () => {
  let m: TestMailroom;
  let browser: Browser;
  let base: string;
  let mx: Sink;
  let dns: TestDns;
  let hooks: Awaited<ReturnType<typeof startReceiver>>;

  before(async () => {
    mx = await startSink({ rcpt: (a) => (a.startsWith('gone@') ? { code: 550, message: '5.1.1 <gone@example.net>: Recipient address rejected: User unknown' } : null) });
    dns = await startDns();
    for (const d of ['example.net', 'example.org']) {
      dns.set(d, [{ type: 'MX', exchange: `mx.${d}`, priority: 10 }]);
      dns.set(`mx.${d}`, [{ type: 'A', address: '127.0.0.1' }]);
    }
    hooks = await startReceiver();
    // The webhook SSRF guard refuses loopback targets unless allowed; this receiver is on 127.0.0.1.
    [m, browser] = await Promise.all([
      startTestMailroom('pglite', { MAILROOM_DNS_SERVERS: dns.server, MAILROOM_MX_PORT: String(mx.port), MAILROOM_WEBHOOK_ALLOW: '127.0.0.1/32', MAILROOM_EVENT_POLL_MS: '50' }),
      launchBrowser(),
    ]);
    base = `http://127.0.0.1:${m.httpPort}`;
  });
  after(async () => {
    await browser?.close();
    await m?.destroy();
    await mx?.close();
    await dns?.close();
    await hooks?.close();
  });

  test('sending health: limit usage equal to the API, a suppression with its reason, the bounce chart, a throttled recipient domain', async (t) => {
    const shots = await screenshotDir(t.name);
    const netLimit = (await m.api('POST', '/v1/limits', { scope: 'recipient_domain', match: 'example.net', max: 20, window: 'day' })).body;
    await m.api('POST', '/v1/limits', { scope: 'recipient_domain', match: 'example.org', max: 1, window: 'day' });
    const inbox = (await m.api('POST', '/v1/inboxes', { username: 'outreach' })).body;
    const send = async (to: string) => (await m.api('POST', `/v1/inboxes/${inbox.id}/messages`, { to, subject: `Hello ${to}`, text: 'Hello' })).body;
    const sent = await Promise.all(['a@example.net', 'b@example.net', 'gone@example.net', 'p1@example.org'].map(send));
    await Promise.all(sent.map((s) => waitFor(async () => /^(sent|bounced)$/.test((await m.api('GET', `/v1/messages/${s.id}`)).body.delivery.status), 20_000, `${s.id} final`)));
    // The second to example.org exceeds its 1-a-day budget: it waits, and example.org is throttled.
    assert.equal((await send('p2@example.org')).delivery.status, 'queued');

    const { page, context, errors } = await openConsole(browser, base, m.adminToken);
    try {
      await openView(page, 'Sending health', 'Sending health');
      // Rate limits: the bar's numbers are the API's.
      const usage = (await m.api('GET', '/v1/limits')).body.data.find((p: any) => p.id === netLimit.id).usage;
      assert.deepEqual(usage.map((u: any) => [u.key, u.used, u.limit]), [['example.net', 3, 20]]);
      const bar = page.locator(`[data-limit-id="${netLimit.id}"] .meter-row`);
      assert.equal(await bar.locator('.meter-num').innerText(), `${usage[0].used} / ${usage[0].limit}`);
      assert.equal(await bar.locator('meter').getAttribute('aria-label'), `example.net: ${usage[0].used} of ${usage[0].limit}`);

      // The suppression the hard bounce created, with its reason.
      const sup = page.getByRole('table', { name: /Suppressed addresses/ }).getByRole('row').filter({ hasText: 'gone@example.net' });
      await sup.getByText('hard bounce').waitFor();
      assert.match(await sup.innerText(), /User unknown/);

      // The bounce chart: a line over the buckets, and the rate the API computes (1 of 4 finished).
      const stats = (await m.api('GET', '/v1/stats/sending?bucket=hour')).body.data;
      const tot = stats.reduce((a: any, b: any) => ({ sent: a.sent + b.sent, bounced: a.bounced + b.bounced }), { sent: 0, bounced: 0 });
      assert.deepEqual(tot, { sent: 3, bounced: 1 });
      const chart = page.getByRole('figure').filter({ hasText: 'Bounce rate per hour' });
      await chart.locator('svg polyline.line').waitFor({ state: 'attached' });
      assert.equal(await chart.locator('svg circle.dot').count(), stats.length, 'one point per hour bucket');
      assert.equal(await page.locator('[data-stat="bounce_rate"]').innerText(), '25 %');
      // No reply was lost in this run: nothing may have gone out twice.
      assert.equal(await page.locator('[data-stat="duplicate_risk"]').innerText(), String(stats.reduce((n: number, b: any) => n + b.duplicate_risk, 0)));
      assert.equal(await chart.locator('table tr').filter({ hasText: '25 %' }).count() >= 1, true, 'the screen-reader table has the bucket with the bounce');

      // The recipient domain that mail waits for.
      const throttled = page.getByRole('table', { name: /Recipient domains with mail waiting/ }).getByRole('row').filter({ hasText: 'example.org' });
      await throttled.getByText('1 rate-limited').waitFor();
      await page.getByText('No sending domain is paused.').waitFor();

      // Daily buckets on request.
      await page.getByLabel('Period').selectOption('day');
      await page.getByRole('figure').filter({ hasText: 'Bounce rate per day' }).waitFor();
      await page.getByLabel('Period').selectOption('hour');
      await page.getByRole('figure').filter({ hasText: 'Bounce rate per hour' }).waitFor();
      await shoot(page, shots, 'health');
      assert.deepEqual(errors, []);
      t.diagnostic(`screenshots: ${shots}`);
    } finally {
      await context.close();
    }
  });

  test('domains: the DKIM TXT record to publish, and Verify once the records are published', async (t) => {
    const shots = await screenshotDir(t.name);
    const domain = (await m.api('GET', '/v1/domains/mailroom.test')).body;
    const dkim = domain.records.find((r: any) => r.purpose === 'dkim');
    assert.equal(dkim.type, 'TXT');
    const { page, context, errors } = await openConsole(browser, base, m.adminToken);
    try {
      await openView(page, 'Domains', 'Domains');
      const panel = page.getByRole('region', { name: 'mailroom.test' });
      const row = panel.locator('tr[data-purpose="dkim"]');
      assert.equal(await row.locator('td').nth(1).innerText(), 'TXT');
      assert.equal(await row.locator('code.dns-value').nth(0).innerText(), dkim.name);
      assert.equal(await row.locator('code.dns-value').nth(1).innerText(), dkim.value);
      await panel.getByText('Not verified').waitFor();
      await panel.getByText('not checked').first().waitFor();
      await shoot(page, shots, 'domains-unverified');

      // Publish every record in the (local) DNS, then Verify: the badges follow the lookup.
      const txt = (name: string) => domain.records.filter((r: any) => r.type === 'TXT' && r.name === name).map((r: any) => ({ type: 'TXT' as const, value: r.value }));
      dns.set('mailroom.test', [{ type: 'MX', exchange: 'mx.mailroom.test', priority: 10 }, ...txt('mailroom.test')]);
      dns.set(dkim.name, txt(dkim.name));
      dns.set('_dmarc.mailroom.test', txt('_dmarc.mailroom.test'));
      await panel.getByRole('button', { name: 'Verify' }).click();
      await panel.getByText('Verified', { exact: true }).waitFor();
      assert.equal(await panel.locator('tbody .badge.good').count(), 4, 'each record found');
      assert.equal((await m.api('GET', '/v1/domains/mailroom.test')).body.verified, true);
      // agents.test has published nothing: still unverified, and no Resume (it is not paused).
      const other = page.getByRole('region', { name: 'agents.test' });
      await other.getByText('Not verified').waitFor();
      assert.equal(await other.getByRole('button', { name: 'Resume sending' }).count(), 0);
      await shoot(page, shots, 'domains-verified');
      assert.deepEqual(errors, []);
      t.diagnostic(`screenshots: ${shots}`);
    } finally {
      await context.close();
    }
  });

  test('webhooks: register through the form, a delivery with its status and HTTP code, Replay delivers again', async (t) => {
    const shots = await screenshotDir(t.name);
    const { page, context, errors } = await openConsole(browser, base, m.adminToken);
    try {
      await openView(page, 'Webhooks', 'Webhooks');
      await page.getByLabel('Endpoint URL').fill(hooks.url);
      await page.getByLabel('Description (optional)').fill('agent runner');
      await page.getByRole('button', { name: 'Register endpoint' }).click();
      const secretDialog = page.getByRole('dialog', { name: 'Endpoint registered' });
      assert.match(await secretDialog.getByLabel('Signing secret').inputValue(), /^whsec_/);
      await secretDialog.getByRole('button', { name: 'Close' }).click();
      const panel = page.getByRole('region', { name: hooks.url });
      await panel.getByText('enabled', { exact: true }).waitFor();
      const hook = (await m.api('GET', '/v1/webhooks')).body.data[0];
      assert.equal(hook.url, hooks.url);

      // An event after registration (an inbox created) is delivered; it appears without a reload.
      await m.api('POST', '/v1/inboxes', { username: 'hooked' });
      await waitFor(async () => hooks.got.length >= 1, 20_000, 'the first delivery at the receiver');
      const first = hooks.got[0];
      assert.equal(first.body.type, 'inbox.created');
      const firstRow = panel.locator(`tr[data-delivery="${first.id}"]`);
      await firstRow.waitFor({ timeout: 20_000 });
      await waitFor(async () => (await firstRow.getAttribute('data-status')) === 'succeeded', 20_000, 'the row to show succeeded');
      const api = (await m.api('GET', `/v1/webhooks/${hook.id}/deliveries`)).body.data.find((d: any) => d.id === first.id);
      assert.equal(api.status, 'succeeded');
      const cell = (label: string) => firstRow.locator(`td[data-label="${label}"]`).innerText();
      assert.deepEqual([await cell('Status'), await cell('Attempts'), await cell('Response')], [api.status, String(api.attempts), `HTTP ${api.last_status}`]);
      assert.equal(api.last_status, 200);
      await shoot(page, shots, 'webhooks-delivered');

      // Replay every retained event (asked to confirm): the receiver gets the first event again under
      // its original webhook-id, and new deliveries appear in the list.
      const rowsBefore = new Set(await panel.locator('tbody tr').evaluateAll((trs) => trs.map((tr) => (tr as HTMLElement).dataset.delivery)));
      const hitsBefore = hooks.got.length;
      await panel.getByRole('button', { name: 'Replay', exact: true }).click();
      await page.getByRole('dialog', { name: 'Replay every retained event?' }).getByRole('button', { name: 'Replay every event' }).click();
      await page.getByRole('status').filter({ hasText: /Replaying \d+ events? to/ }).first().waitFor();
      await waitFor(async () => hooks.got.slice(hitsBefore).some((h) => h.id === first.id), 20_000, 'the first event delivered again');
      await waitFor(async () => {
        const now = await panel.locator('tbody tr').evaluateAll((trs) => trs.map((tr) => (tr as HTMLElement).dataset.delivery));
        return now.some((id) => !rowsBefore.has(id));
      }, 20_000, 'a new delivery row in the view');
      // The replay is itself an event, delivered like any other (after the replayed ones, or between them).
      await waitFor(async () => hooks.got.slice(hitsBefore).some((h) => h.body.type === 'webhook.replayed'), 20_000, 'the webhook.replayed event delivered');
      // The view follows the deliveries to their end without a reload (it polls while any is pending).
      await waitFor(async () => (await panel.locator('tbody tr[data-status="pending"]').count()) === 0
        && (await panel.locator('tbody tr[data-status="succeeded"]').count()) > 0, 20_000, 'every shown delivery succeeded');
      await shoot(page, shots, 'webhooks-replayed');
      assert.deepEqual(errors, []);
      t.diagnostic(`screenshots: ${shots}`);
    } finally {
      await context.close();
    }
  });
});
