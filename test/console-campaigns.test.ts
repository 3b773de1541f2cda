import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { builtinPersonalize } from '../src/orchestrator/agents/personalize.ts';
import type { AgentRegistry, PersonalizeAgent } from '../src/orchestrator/roles.ts';
import { browserSkip, launchBrowser, openConsole, screenshotDir } from './helpers/browser.ts';
import { allRuns, waitCompleted } from './helpers/campaign.ts';
import { startTestMailroom, waitFor, waitForMessages, type TestMailroom } from './helpers/mailroom.ts';
import { startSink, type Sink } from './helpers/sink.ts';

/**
 * The operator console's campaign views (issue 8) end to end: a real headless Chromium against a
 * real running Mailroom with a real campaign of the orchestration issue — leads that receive,
 * reply, bounce at the relay (a real SMTP sink) and fail in an agent — and a campaign with
 * `approval: required` whose drafts are approved, edited and rejected in the browser.
 * Embedded engine only: the console reads nothing but the public REST API and the event stream,
 * which the API test files exercise on both engines; a browser run per engine would only double
 * the time. Every number and order the page shows is checked against the API.
 */
const skip = browserSkip();
const ALWAYS = { days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], start: '00:00', end: '24:00' };

/** A personalize agent that fails for the lead "flaky@" while `failFlaky` is set (→ dead-lettered). */
let failFlaky = true;
const flaky: PersonalizeAgent = {
  async personalize(input, ctx) {
    if (failFlaky && input.lead.email.startsWith('flaky@')) throw new Error('model endpoint unavailable (simulated)');
    return builtinPersonalize.personalize(input, ctx);
  },
};
const agents: AgentRegistry = { personalize: { flaky } };

/** The number at a funnel key ("sent_per_step.0", "replied.interested", "replied" = all replies). */
function funnelValue(f: any, key: string): number {
  const v = key.split('.').reduce((o, k) => o?.[k], f);
  return typeof v === 'object' && v !== null ? Object.values(v as Record<string, number>).reduce((a, b) => a + b, 0) : v;
}

/** Every number of the API's funnel that the chart must show when it is not zero. */
function nonZeroKeys(f: any): string[] {
  const keys = ['leads', 'queued', ...f.sent_per_step.map((_: number, i: number) => `sent_per_step.${i}`), ...Object.keys(f.replied).map((c) => `replied.${c}`),
    'stopped', 'bounced', 'unsubscribed', 'failed', 'complained', 'suppressed', 'cancelled', 'needs_human'];
  return keys.filter((k) => funnelValue(f, k) > 0);
}

/** The funnel as the page shows it: key → [number in the screen-reader table, number drawn on the bar]. */
async function shownFunnel(page: Page): Promise<Map<string, [number, number]>> {
  const rows = await page.locator('figure.funnel').evaluate((fig) => [...fig.querySelectorAll('tr[data-key]')].map((tr) => {
    const key = (tr as HTMLElement).dataset.key!;
    const drawn = fig.querySelector(`g[data-key="${key}"] .chart-value`)?.textContent ?? '';
    return [key, Number(tr.querySelector('td')!.textContent), Number(drawn)] as const;
  }));
  return new Map(rows.map(([k, table, drawn]) => [k, [table, drawn]]));
}

/** Waits until the chart equals the API's funnel (the page refreshes itself from live events). */
async function funnelMatchesApi(page: Page, m: TestMailroom, campaignId: string): Promise<any> {
  let last = '';
  try {
    return await waitFor(async () => {
      const f = (await m.api('GET', `/v1/campaigns/${campaignId}`)).body.funnel;
      const shown = await shownFunnel(page);
      const wrong = [...shown].filter(([k, [table, drawn]]) => table !== funnelValue(f, k) || drawn !== table).map(([k, v]) => `${k}: ${v} vs ${funnelValue(f, k)}`);
      const missing = nonZeroKeys(f).filter((k) => !shown.has(k));
      last = JSON.stringify({ wrong, missing });
      return wrong.length === 0 && missing.length === 0 ? f : null;
    }, 15_000, 'the funnel on the page to equal the API\'s');
  } catch (err) {
    throw new Error(`${(err as Error).message}: ${last}`);
  }
}

describe('operator console: campaigns, traces and drafts in a real browser', { skip }, () => {
  let m: TestMailroom;
  let sink: Sink;
  let browser: Browser;
  let base: string;
  let campaign: any;
  let ana: any;
  const inbox = async (username: string, domain = 'mailroom.test') => {
    const r = await m.api('POST', '/v1/inboxes', { username, domain });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body;
  };

  before(async () => {
    // The relay stands for the internet: gone@ is refused at RCPT (a hard bounce), the rest accepted.
    sink = await startSink({ starttls: false, rcpt: (a) => (a.startsWith('gone@') ? { code: 550, message: '5.1.1 <gone@prospects.example>: User unknown' } : null) });
    const [mr, b] = await Promise.all([
      startTestMailroom('pglite', { MAILROOM_SMTP_RELAY_URL: `smtp://127.0.0.1:${sink.port}` }, { agents, engine: { retryBaseMs: 50, maxAttempts: 2 } }),
      launchBrowser(),
    ]);
    m = mr;
    browser = b;
    base = `http://127.0.0.1:${m.httpPort}`;
    const sender = await inbox('sdr');
    const owner = await inbox('owner');
    ana = await inbox('ana', 'agents.test');
    const bo = await inbox('bo', 'agents.test');
    // Five leads, a fast campaign clock (an hour a second): ana replies (interested), bo is of her
    // company (stopped), carl never answers (stopped after the last step), gone bounces, flaky's
    // agent keeps failing (dead-lettered, retried from the page).
    const r = await m.api('POST', '/v1/campaigns', {
      name: 'Q3 pilot outreach', senders: [{ inbox: sender.id }], send_window: ALWAYS, clock: { scale: 3600 },
      agents: { personalize: 'flaky' }, escalate_to: owner.address,
      steps: [{ subject: 'Hello {{first_name}}', text: 'Hi {{first_name}}, a pilot for your team?' }, { text: 'Following up on the pilot.', delay_business_days: 0.02 }],
      // The wait after the last step (0.2 × 24 h of campaign clock ≈ 5 s) leaves ana's reply
      // time to arrive, be parsed and reach her run however busy the machine is.
      stop: { final_wait_business_days: 0.2 },
      leads: [
        { email: ana.address, first_name: 'Ana' }, { email: bo.address, first_name: 'Bo' },
        { email: 'carl@prospects.example', first_name: 'Carl' }, { email: 'gone@prospects.example', first_name: 'Gone' },
        { email: 'flaky@prospects.example', first_name: 'Flaky' },
      ],
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    campaign = r.body;
    const [first] = await waitForMessages(m, ana.id);
    await m.api('POST', `/v1/messages/${first.id}/reply`, { text: 'Yes, interested. Call me Thursday?' });
  });
  after(async () => {
    await browser?.close();
    await m?.destroy();
    await sink?.close();
  });

  test('the funnel chart shows exactly the API\'s numbers and follows the campaign live; a dead-lettered run is retried from the page', async (t) => {
    const shots = await screenshotDir(t.name);
    const { page, context, errors } = await openConsole(browser, base, m.adminToken);
    try {
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Campaigns' }).click();
      const row = page.locator(`tr[data-campaign-id="${campaign.id}"]`);
      await row.getByRole('link', { name: 'Q3 pilot outreach' }).waitFor();
      await page.getByRole('heading', { level: 1, name: 'Campaigns' }).waitFor();

      // Opened while the campaign is still going: the page must follow it without a reload.
      await row.getByRole('link', { name: 'Q3 pilot outreach' }).click();
      await page.getByRole('heading', { level: 1, name: 'Q3 pilot outreach' }).waitFor();
      await page.locator('figure.funnel').waitFor();
      const navigations: string[] = [];
      page.on('framenavigated', (f) => { if (f === page.mainFrame()) navigations.push(f.url()); });

      await waitCompleted(() => m.api, campaign.id, 60_000);
      const f = await funnelMatchesApi(page, m, campaign.id);
      // The world did what the scenario says, so the chart is checked on real variety.
      assert.equal(f.leads, 5);
      assert.equal(f.sent_per_step[0], 4, 'four first steps sent (flaky never got that far)');
      assert.equal(f.replied.interested, 1);
      assert.equal(f.bounced, 1);
      assert.equal(f.failed, 1);
      assert.ok(f.stopped >= 1);
      await page.screenshot({ path: path.join(shots, 'campaign-funnel.png'), fullPage: true });

      // The leads table: one row per run, each linking to its trace.
      const runs = await allRuns(m.api, campaign.id);
      assert.equal(await page.locator('tr[data-lead]').count(), runs.length);
      for (const r of runs) {
        const link = page.locator(`tr[data-run-id="${r.id}"][data-lead]`).getByRole('link', { name: r.lead.email });
        assert.equal(await link.getAttribute('href'), `#/runs/${r.id}`);
      }

      // The dead-letter list has flaky's run with its reason; Retry (the agent works again now).
      const dead = runs.find((r) => r.status === 'dead');
      assert.equal(dead?.lead.email, 'flaky@prospects.example');
      const deadRow = page.getByRole('table', { name: 'Dead-lettered runs' }).locator(`tr[data-run-id="${dead.id}"]`);
      await deadRow.getByText(/model endpoint unavailable/).waitFor();
      failFlaky = false;
      await deadRow.getByRole('button', { name: 'Retry' }).click();
      await page.getByText('No dead-lettered runs.').waitFor();
      assert.notEqual((await m.api('GET', `/v1/runs/${dead.id}`)).body.status, 'dead', 'the API has the run going again');
      await waitFor(async () => ((await m.api('GET', `/v1/runs/${dead.id}`)).body.status === 'done') || null, 30_000, 'the retried run to finish');
      await waitCompleted(() => m.api, campaign.id, 30_000);
      const after = await funnelMatchesApi(page, m, campaign.id);
      assert.equal(after.failed, 0);
      assert.equal(after.sent_per_step[0], 5, 'the retried lead got its first step');
      assert.deepEqual(navigations, [], 'the funnel followed the campaign without a reload');
      await page.screenshot({ path: path.join(shots, 'campaign-funnel-after-retry.png'), fullPage: true });

      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Campaigns' }).click();
      await page.locator(`tr[data-campaign-id="${campaign.id}"]`).getByText('completed').waitFor();
      await page.screenshot({ path: path.join(shots, 'campaign-list.png') });
      await page.setViewportSize({ width: 390, height: 844 });
      await page.goto(`${base}/#/campaigns/${campaign.id}`);
      await page.locator('figure.funnel').waitFor();
      await page.screenshot({ path: path.join(shots, 'campaign-funnel-phone.png'), fullPage: true });
      assert.deepEqual(errors, []);
      t.diagnostic(`screenshots: ${shots}`);
    } finally {
      await context.close();
    }
  });

  test('a lead\'s trace timeline lists its agent calls, handoffs, sends and reply in the API\'s order on one time axis', async (t) => {
    const shots = await screenshotDir(t.name);
    await waitCompleted(() => m.api, campaign.id, 60_000);
    const run = (await allRuns(m.api, campaign.id)).find((r) => r.lead.email === ana.address);
    const { page, context, errors } = await openConsole(browser, base, m.adminToken);
    try {
      await page.goto(`${base}/#/campaigns/${campaign.id}`);
      await page.locator(`tr[data-run-id="${run.id}"]`).getByRole('link', { name: ana.address }).click();
      await page.getByRole('heading', { level: 1, name: ana.address }).waitFor();
      const rows = page.locator('ol.timeline li[data-kind]');
      await rows.first().waitFor();
      // The trace can still grow by an event (the escalation's delivery): compare until stable.
      const { timeline, shown } = await waitFor(async () => {
        const tl = (await m.api('GET', `/v1/runs/${run.id}/trace`)).body.timeline;
        const s = await rows.evaluateAll((els) => els.map((e) => ({ kind: (e as HTMLElement).dataset.kind, name: (e as HTMLElement).dataset.name, left: parseFloat((e.querySelector('.tl-bar') as HTMLElement).style.left) })));
        return s.length === tl.length ? { timeline: tl, shown: s } : null;
      }, 10_000, 'the timeline to list every trace entry');
      assert.deepEqual(shown.map((s) => `${s.kind}: ${s.name}`), timeline.map((e: any) => `${e.kind}: ${e.name}`), 'the rows are the trace, in the API\'s order');
      // One time axis: each bar starts no earlier than the one before it (the trace is oldest first).
      for (let i = 1; i < shown.length; i++) assert.ok(shown[i].left >= shown[i - 1].left, `row ${i} (${shown[i].name}) not before row ${i - 1}`);
      assert.equal(shown[0].left, 0);
      // The steps a replied lead went through, in order.
      const at = (kind: string, name: RegExp) => shown.findIndex((s) => s.kind === kind && name.test(s.name!));
      const order = [at('agent', /^research$/), at('agent', /^personalize$/), at('send', /^send step 1$/), at('event', /^message\.sent$/), at('agent', /^respond$/), at('event', /^run\.reply$/)];
      assert.ok(order.every((i) => i >= 0), `every expected step on the timeline: ${order}`);
      assert.deepEqual([...order].sort((a, b) => a - b), order, 'research → personalize → send → sent → respond → reply');
      // A row opens to show what the agent was given and answered, with its duration in the label.
      const respond = rows.nth(order[4]);
      assert.match(await respond.locator('.tl-label').innerText(), /\+\d/);
      await respond.getByRole('button', { name: 'respond' }).click();
      await respond.getByRole('heading', { name: 'Output' }).waitFor();
      assert.match(await respond.locator('.tl-detail').innerText(), /interested/);
      await page.screenshot({ path: path.join(shots, 'run-timeline.png'), fullPage: true });
      await page.setViewportSize({ width: 390, height: 844 });
      await page.screenshot({ path: path.join(shots, 'run-timeline-phone.png'), fullPage: true });
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });

  test('drafts awaiting approval: an edit is what goes, a double-clicked Approve sends once, a reject sends nothing', async (t) => {
    const shots = await screenshotDir(t.name);
    const sender = await inbox('approver');
    const owner = await inbox('approver-owner');
    const c = (await m.api('POST', '/v1/campaigns', {
      name: 'Approval pilot', senders: [{ inbox: sender.id }], send_window: ALWAYS, clock: { scale: 3600 }, approval: 'required',
      escalate_to: owner.address, steps: [{ subject: 'Pilot for {{first_name}}', text: 'Hi {{first_name}}, drafted by the agent.' }],
      stop: { final_wait_business_days: 0.02 },
      leads: [{ email: 'dee@prospects.example', first_name: 'Dee' }, { email: 'eve@prospects.example', first_name: 'Eve' }],
    })).body;
    assert.ok(c.id, JSON.stringify(c));
    const pending = await waitFor(async () => {
      const l = (await m.api('GET', `/v1/drafts?campaign_id=${c.id}&status=pending`)).body.data;
      return l.length === 2 ? l : null;
    }, 20_000, 'two drafts awaiting approval');
    const dee = pending.find((d: any) => d.content.to[0] === 'dee@prospects.example');
    const eve = pending.find((d: any) => d.content.to[0] === 'eve@prospects.example');
    assert.equal(sink.messages.filter((x) => x.to.includes('dee@prospects.example')).length, 0, 'nothing sent before approval');

    const { page, context, errors } = await openConsole(browser, base, m.adminToken);
    const approvals: string[] = [];
    page.on('request', (r) => { if (r.method() === 'POST' && /\/approve$/.test(r.url())) approvals.push(r.url()); });
    try {
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Drafts' }).click();
      const card = page.locator(`article[data-draft-id="${dee.id}"]`);
      await card.waitFor();
      assert.match(await card.innerText(), /dee@prospects\.example[\s\S]*Pilot for Dee[\s\S]*drafted by the agent/);
      await page.screenshot({ path: path.join(shots, 'drafts.png'), fullPage: true });

      // Edit: the dialog has the fields; the saved text is the draft's.
      await card.getByRole('button', { name: 'Edit' }).click();
      const dlg = page.getByRole('dialog', { name: /Edit draft/ });
      await dlg.getByLabel('Message').fill('Hi Dee, edited in the console before approval.');
      await page.screenshot({ path: path.join(shots, 'draft-edit.png') });
      await dlg.getByRole('button', { name: 'Save draft' }).click();
      await dlg.waitFor({ state: 'detached' });
      await card.getByText('edited in the console').waitFor();
      assert.equal((await m.api('GET', `/v1/drafts/${dee.id}`)).body.content.text, 'Hi Dee, edited in the console before approval.');

      // Approve, double-clicked: the console sends one request, the draft is sent, the relay gets one message.
      await card.getByRole('button', { name: 'Approve' }).dblclick();
      await waitFor(async () => ((await m.api('GET', `/v1/drafts/${dee.id}`)).body.status === 'sent') || null, 20_000, 'the approved draft sent');
      const atSink = await waitFor(async () => { const got = sink.messages.filter((x) => x.to.includes('dee@prospects.example')); return got.length ? got : null; }, 20_000, 'the message at the relay');
      await new Promise((r) => setTimeout(r, 1_000)); // time for a second send, were there one
      assert.equal(approvals.length, 1, 'one approve request for a double click');
      assert.equal(sink.messages.filter((x) => x.to.includes('dee@prospects.example')).length, 1, 'exactly one message reached the relay');
      assert.match(atSink[0].raw.toString('utf8'), /edited in the console/);
      const outbound = (await m.api('GET', `/v1/inboxes/${sender.id}/messages?direction=outbound`)).body.data.filter((x: any) => x.to.some((a: any) => a.address === 'dee@prospects.example'));
      assert.equal(outbound.length, 1, 'exactly one outbound message to the lead');

      // Reject with a note: never sent, and the run ends.
      const eveCard = page.locator(`article[data-draft-id="${eve.id}"]`);
      await eveCard.getByRole('button', { name: 'Reject' }).click();
      const rej = page.getByRole('dialog', { name: 'Reject draft?' });
      await rej.getByLabel('Note (optional)').fill('not a fit');
      await rej.getByRole('button', { name: 'Reject draft' }).click();
      await rej.waitFor({ state: 'detached' });
      const rejected = (await m.api('GET', `/v1/drafts/${eve.id}`)).body;
      assert.equal(rejected.status, 'rejected');
      assert.equal(rejected.review_note, 'not a fit');
      // Both decided: the list of drafts awaiting approval empties itself (live).
      await page.getByText('No drafts are waiting for approval.').waitFor({ timeout: 15_000 });
      await page.getByLabel('Show').selectOption('sent');
      await page.locator(`article[data-draft-id="${dee.id}"][data-status="sent"]`).waitFor();
      await page.screenshot({ path: path.join(shots, 'drafts-sent.png'), fullPage: true });
      await page.setViewportSize({ width: 390, height: 844 });
      await page.screenshot({ path: path.join(shots, 'drafts-sent-phone.png'), fullPage: true });
      assert.equal(sink.messages.filter((x) => x.to.includes('eve@prospects.example')).length, 0, 'a rejected draft is never sent');
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });

  test('a read-only token sees the funnel and the drafts but no Pause, Retry, Approve, Edit or Reject', async () => {
    const ro = (await m.api('POST', '/v1/tokens', { name: 'viewer', scopes: ['campaigns:read', 'messages:read', 'inboxes:read'] })).body.token;
    const sender = await inbox('ro-sender');
    const c = (await m.api('POST', '/v1/campaigns', {
      name: 'Viewer check', senders: [{ inbox: sender.id }], send_window: ALWAYS, clock: { scale: 3600 }, approval: 'required', escalate_to: sender.address,
      steps: [{ subject: 'Hi', text: 'Waiting for approval.' }], stop: { final_wait_business_days: 0.02 },
      leads: [{ email: 'fay@prospects.example' }],
    })).body;
    const draft = await waitFor(async () => (await m.api('GET', `/v1/drafts?campaign_id=${c.id}&status=pending`)).body.data[0] ?? null, 20_000, 'a pending draft');
    const { page, context, errors } = await openConsole(browser, base, ro);
    try {
      await page.goto(`${base}/#/campaigns/${c.id}`);
      await page.locator('figure.funnel').waitFor();
      await page.getByRole('table', { name: /^Leads of/ }).waitFor();
      assert.equal(await page.getByRole('button', { name: /^(Pause|Resume|Retry)$/ }).count(), 0);
      await page.goto(`${base}/#/drafts`);
      await page.locator(`article[data-draft-id="${draft.id}"]`).waitFor();
      assert.equal(await page.getByRole('button', { name: /^(Approve|Edit|Reject)$/ }).count(), 0);
      assert.equal((await m.api('POST', `/v1/drafts/${draft.id}/approve`, {}, ro)).status, 403, 'and the API refuses it if forced');
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });
});
