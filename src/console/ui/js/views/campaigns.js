// Campaigns: the list (status, leads, funnel summary, pause/resume) and one campaign (its funnel as
// a chart with the API's exact numbers, its leads with their run state, its dead-lettered runs
// with retry). Everything live: campaign, run and message events refresh the page (debounced).
import { h, replace, table, pagedTable, timeEl, badge, toneOf, actionButton, announce, showError, barChart, field } from '../dom.js';

const RUN_STATUSES = ['pending', 'active', 'waiting', 'done', 'needs_human', 'dead', 'paused'];
const PAGE = 25;

const enc = encodeURIComponent;
const sum = (xs) => xs.reduce((a, b) => a + b, 0);
const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

/**
 * The funnel as bars, in the order a lead moves through it: queued → sent per step → replied by
 * class → how runs ended. Each bar's `key` is the path of its number in the API's funnel object
 * (e.g. `sent_per_step.0`, `replied.interested`), so what is drawn can be checked against the API.
 * Rarer ends (complaints, suppressions, cancelled sends, needs a human) are shown when they happened.
 */
export function funnelBars(f) {
  const bars = [
    { key: 'leads', label: 'Leads', value: f.leads, tone: 'info' },
    { key: 'queued', label: 'Queued (not sent yet)', value: f.queued },
    ...f.sent_per_step.map((n, i) => ({ key: `sent_per_step.${i}`, label: `Sent · step ${i + 1}`, value: n, tone: 'good' })),
  ];
  const classes = Object.keys(f.replied).sort();
  if (classes.length === 0) bars.push({ key: 'replied', label: 'Replied', value: 0, tone: 'info', virtual: true });
  for (const c of classes) bars.push({ key: `replied.${c}`, label: `Replied · ${c.replace(/_/g, ' ')}`, value: f.replied[c], tone: 'info' });
  bars.push(
    { key: 'stopped', label: 'Stopped', value: f.stopped, tone: 'muted' },
    { key: 'bounced', label: 'Bounced', value: f.bounced, tone: 'bad' },
    { key: 'unsubscribed', label: 'Unsubscribed', value: f.unsubscribed, tone: 'warn' },
    { key: 'failed', label: 'Failed (dead-lettered)', value: f.failed, tone: 'bad' },
  );
  for (const [key, label, tone] of [['complained', 'Complained', 'bad'], ['suppressed', 'Suppressed', 'warn'], ['cancelled', 'Cancelled in the outbox', 'warn'], ['needs_human', 'Needs a human', 'warn']]) {
    if (f[key] > 0) bars.push({ key, label, value: f[key], tone });
  }
  return bars;
}

/** barChart with a `data-key` on each bar and each row of its screen-reader table (test hooks). */
function funnelChart(f, title) {
  const bars = funnelBars(f);
  // The SVG scales to its box: drawn narrower on a phone, so its text stays readable there.
  const narrow = window.matchMedia('(max-width: 640px)').matches;
  const fig = barChart(bars, { title, width: narrow ? 400 : 560 });
  fig.classList.add('funnel');
  const groups = fig.querySelectorAll('svg > g');
  const rows = fig.querySelectorAll('table tbody tr');
  bars.forEach((b, i) => {
    groups[i]?.setAttribute('data-key', b.key);
    if (rows[i]) rows[i].dataset.key = b.key;
  });
  return fig;
}

/** One line for a table cell: "12 sent · 3 replied · 1 bounced". */
function funnelSummary(f) {
  const sent = sum(f.sent_per_step);
  const replied = sum(Object.values(f.replied));
  const parts = [`${sent} sent`, `${replied} replied`];
  if (f.bounced) parts.push(`${f.bounced} bounced`);
  if (f.unsubscribed) parts.push(`${f.unsubscribed} unsubscribed`);
  if (f.failed) parts.push(`${f.failed} failed`);
  if (f.queued) parts.push(`${f.queued} queued`);
  return parts.join(' · ');
}

/** Pause or resume, for a token with campaigns:write; `after` gets the updated campaign. */
function pauseResume(ctx, c, after) {
  if (!ctx.can('campaigns:write')) return null;
  if (c.status === 'running') {
    return actionButton('Pause', async () => {
      const got = await ctx.api.post(`/v1/campaigns/${enc(c.id)}/pause`);
      announce(`Paused ${c.name}: no run takes another step until it is resumed.`, 'good');
      after(got);
    }, { title: `Pause ${c.name}` });
  }
  if (c.status === 'paused') {
    return actionButton('Resume', async () => {
      const got = await ctx.api.post(`/v1/campaigns/${enc(c.id)}/resume`);
      announce(`Resumed ${c.name}.`, 'good');
      after(got);
    }, { kind: 'primary', title: `Resume ${c.name}` });
  }
  return null;
}

/**
 * Calls `fn` after events stop arriving for `ms`, but at least every `maxMs` while they keep
 * coming: a busy campaign emits events continuously, and a plain debounce would never fire.
 */
function throttled(ctx, fn, ms = 600, maxMs = 2500) {
  let timer = null;
  let first = 0;
  const run = () => { timer = null; first = 0; if (ctx.alive()) fn().catch(() => {}); };
  ctx.cleanup(() => clearTimeout(timer));
  return () => {
    const now = Date.now();
    if (!first) first = now;
    clearTimeout(timer);
    timer = setTimeout(run, now - first >= maxMs ? 0 : ms);
  };
}

const campaignEvent = (e) => /^(campaign|run|draft|message)\./.test(e.type);

export async function campaignList(ctx) {
  const { api, root } = ctx;
  const list = pagedTable(ctx, {
    path: (cursor, limit) => `/v1/campaigns${api.qs({ limit, cursor })}`,
    columns: [
      { label: 'Name', cell: (c) => h('a', { href: `#/campaigns/${enc(c.id)}` }, c.name) },
      { label: 'Status', cell: (c) => badge(c.status, toneOf(c.status)) },
      { label: 'Leads', class: 'num', cell: (c) => String(c.funnel.leads) },
      { label: 'Funnel', cell: (c) => funnelSummary(c.funnel) },
      { label: 'Created', cell: (c) => timeEl(c.created_at) },
      ...(ctx.can('campaigns:write') ? [{ label: 'Actions', cell: (c) => pauseResume(ctx, c, () => load()) ?? '' }] : []),
    ],
    caption: 'Campaigns, newest first',
    empty: 'No campaigns yet. Create one with `mailroom campaign create <file>` or POST /v1/campaigns.',
    rowAttrs: (c) => ({ dataset: { campaignId: c.id } }),
  });
  const load = () => list.reload();
  replace(root, h('div', { class: 'campaign-view' }, h('h1', {}, 'Campaigns'), list.el));
  await load();
  const refresh = throttled(ctx, () => load());
  ctx.cleanup(ctx.live.on((e) => { if (/^(campaign|run)\./.test(e.type)) refresh(); }));
}

export async function campaignDetail(ctx) {
  const { api, can, root, params: [campaignId] } = ctx;
  const path = `/v1/campaigns/${enc(campaignId)}`;
  let c = await api.get(path);

  const head = h('div');
  const funnelBox = h('div', { 'aria-live': 'polite', 'aria-busy': 'false' });
  const deadBox = h('div');
  const leadsBox = h('div');

  const drawHead = () => replace(head,
    h('div', { class: 'crumbs' }, h('a', { href: '#/campaigns' }, 'Campaigns'), ' / ', c.name),
    h('h1', {}, c.name),
    h('div', { class: 'toolbar' },
      badge(c.status, toneOf(c.status)),
      h('span', {}, `${plural(c.steps, 'step')} · ${plural(c.funnel.leads, 'lead')} · from ${c.senders.map((s) => s.address).join(', ')}`),
      c.clock.scale !== 1 ? badge(`clock ×${c.clock.scale}`, 'info', `campaign clock runs ${c.clock.scale}× real time; now ${c.clock.now}`) : null,
      h('span', { class: 'spacer' }),
      can('messages:read') ? h('a', { href: '#/drafts' }, 'Drafts') : null,
      pauseResume(ctx, c, (got) => { c = got; drawHead(); })));

  const drawFunnel = () => {
    const st = c.funnel.status;
    replace(funnelBox,
      funnelChart(c.funnel, `Funnel of ${c.name}`),
      h('p', { class: 'counts' }, 'Runs: ', RUN_STATUSES.filter((s) => st[s]).map((s, i) => [i ? ' · ' : '', badge(`${st[s]} ${s.replace(/_/g, ' ')}`, toneOf(s))])),
      Object.keys(c.funnel.outcomes).length
        ? h('p', { class: 'counts' }, 'Outcomes: ', Object.entries(c.funnel.outcomes).map(([k, n]) => `${k.replace(/_/g, ' ')} ${n}`).join(' · '))
        : null);
  };

  // Dead-lettered runs of this campaign: the reason, and a retry from the stage that failed.
  const loadDead = async () => {
    const page = await api.get(`${path}/runs${api.qs({ status: 'dead', limit: 100 })}`);
    if (!ctx.alive()) return;
    replace(deadBox, table(page.data, [
      { label: 'Lead', cell: (r) => h('a', { href: `#/runs/${enc(r.id)}` }, r.lead.email) },
      { label: 'Failed in', cell: (r) => r.stage },
      { label: 'Attempts', class: 'num', cell: (r) => String(r.attempts) },
      { label: 'Last error', cell: (r) => h('code', { class: 'err-text' }, r.last_error ?? '—') },
      { label: 'Since', cell: (r) => timeEl(r.updated_at) },
      ...(can('campaigns:write') ? [{ label: 'Actions', cell: (r) => actionButton('Retry', async () => {
        await api.post(`/v1/runs/${enc(r.id)}/retry`);
        announce(`Retrying ${r.lead.email} from ${r.stage}.`, 'good');
        await refreshAll();
      }, { title: `Retry the run of ${r.lead.email}` }) }] : []),
    ], { caption: 'Dead-lettered runs', empty: 'No dead-lettered runs.', rowAttrs: (r) => ({ dataset: { runId: r.id } }) }),
    page.next_cursor ? h('p', {}, h('small', {}, 'More in GET /v1/runs?status=dead.')) : null);
  };

  // Leads: server-side pages of runs, with a status filter. `cursors` is the trail of page starts,
  // so Previous goes back without the API needing backwards cursors.
  let statusFilter = '';
  let cursors = [null];
  let next = null;
  const filter = field('Show runs', 'run-status', { type: 'select', value: '', options: [['', 'all'], ...RUN_STATUSES.map((s) => [s, s.replace(/_/g, ' ')])] });
  filter.querySelector('select').addEventListener('change', (e) => { statusFilter = e.target.value; cursors = [null]; loadLeads().catch(showError); });
  const prev = h('button', { type: 'button', onclick: () => { cursors.pop(); loadLeads().catch(showError); } }, 'Previous page');
  const nextBtn = h('button', { type: 'button', onclick: () => { cursors.push(next); loadLeads().catch(showError); } }, 'Next page');
  const pageInfo = h('span', { class: 'counts' });
  const leadsTable = h('div');
  const loadLeads = async () => {
    const page = await api.get(`${path}/runs${api.qs({ status: statusFilter, limit: PAGE, cursor: cursors[cursors.length - 1] })}`);
    if (!ctx.alive()) return;
    next = page.next_cursor;
    prev.disabled = cursors.length <= 1;
    nextBtn.disabled = !next;
    pageInfo.textContent = `Page ${cursors.length}`;
    replace(leadsTable, table(page.data, [
      { label: 'Lead', cell: (r) => h('a', { href: `#/runs/${enc(r.id)}`, title: 'Open its trace timeline' }, r.lead.email) },
      { label: 'Status', cell: (r) => badge(r.status.replace(/_/g, ' '), toneOf(r.status)) },
      { label: 'Stage', cell: (r) => r.stage.replace(/_/g, ' ') },
      { label: 'Sent', class: 'num', cell: (r) => `${r.steps_sent}/${c.steps}` },
      { label: 'Outcome', cell: (r) => [r.outcome ? r.outcome.replace(/_/g, ' ') : '—', r.reply_class ? [' ', badge(r.reply_class.replace(/_/g, ' '), 'info')] : null] },
      { label: 'Next', cell: (r) => (r.send_at && !r.finished_at ? h('span', { title: 'campaign-clock time' }, timeEl(r.send_at)) : '—') },
      { label: 'Updated', cell: (r) => timeEl(r.updated_at) },
    ], { caption: `Leads of ${c.name}${statusFilter ? ` (${statusFilter})` : ''}`, empty: statusFilter ? `No ${statusFilter} runs.` : 'No leads yet.', rowAttrs: (r) => ({ dataset: { runId: r.id, lead: r.lead.email } }) }));
  };
  replace(leadsBox, h('div', { class: 'toolbar' }, filter, h('span', { class: 'spacer' }), prev, pageInfo, nextBtn), leadsTable);

  const refreshAll = async () => {
    funnelBox.setAttribute('aria-busy', 'true');
    c = await api.get(path);
    if (!ctx.alive()) return;
    drawHead();
    drawFunnel();
    funnelBox.setAttribute('aria-busy', 'false');
    await Promise.all([loadDead(), loadLeads()]);
  };

  drawHead();
  drawFunnel();
  replace(root, h('div', { class: 'campaign-view' }, head,
    h('section', { 'aria-labelledby': 'funnel-h', class: 'panel campaign-funnel' }, h('h2', { id: 'funnel-h' }, 'Funnel'), funnelBox),
    h('section', { 'aria-labelledby': 'dead-h' }, h('h2', { id: 'dead-h' }, 'Dead-lettered runs'), deadBox),
    h('section', { 'aria-labelledby': 'leads-h' }, h('h2', { id: 'leads-h' }, 'Leads'), leadsBox)));
  await Promise.all([loadDead(), loadLeads()]);

  // Live: a run moving, a send, a bounce or a reply changes the funnel. Events of other campaigns
  // that say which campaign they belong to are skipped; message events often do not say, so they count.
  const refresh = throttled(ctx, refreshAll);
  ctx.cleanup(ctx.live.on((e) => {
    if (!campaignEvent(e)) return;
    if (e.data?.campaign_id && e.data.campaign_id !== campaignId) return;
    refresh();
  }));
}
