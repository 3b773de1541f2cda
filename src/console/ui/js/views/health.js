// Sending health: rate-limit usage against budgets, the bounce rate over time, sending domains
// paused by it, recipient domains that mail is waiting for, and the suppression list.
// Everything here is admin-only in the API (GET /v1/limits, /v1/stats/*, /v1/suppressions, /v1/domains).
import { h, replace, table, badge, timeEl, meter, lineChart, actionButton, field, announce, showError, dialog, section } from '../dom.js';

const SCOPES = [
  ['inbox', 'Per sending inbox'],
  ['domain', 'Per sending domain'],
  ['recipient_domain', 'Per recipient domain'],
  ['global', 'Whole server'],
];
const REASONS = { hard_bounce: ['hard bounce', 'bad'], complaint: ['complaint', 'bad'], unsubscribe: ['unsubscribed', 'warn'], manual: ['manual', 'muted'] };

const pct = (v) => (v == null ? '—' : `${(v * 100).toFixed(v > 0 && v < 0.1 ? 1 : 0)} %`);
const fmtWindow = (s) => (s % 86400 === 0 ? `${s / 86400 === 1 ? '' : `${s / 86400} `}day` : s % 3600 === 0 ? `${s / 3600 === 1 ? '' : `${s / 3600} `}hour` : s % 60 === 0 ? `${s / 60} min` : `${s} s`);

/** One policy: its budget, and a bar per key with sends in the window (or an empty bar for its one key). */
function policyBlock(p, inboxName) {
  const name = (key) => (p.scope === 'inbox' ? inboxName(key) : p.scope === 'global' ? 'all mail' : key);
  const title = `${p.scope === 'global' ? 'Everything' : p.match === '*' ? `Each ${p.scope.replace('_', ' ')}` : name(p.match)}: ${p.max} per ${fmtWindow(p.window_seconds)}`;
  const usage = p.usage.length ? p.usage
    // A policy for one key with no sends in its window still has a budget: show it empty.
    : p.match !== '*' || p.scope === 'global' ? [{ key: p.scope === 'global' ? '' : p.match, used: 0, limit: p.max, resets_at: null }] : [];
  return h('div', { class: 'limit', dataset: { limitId: p.id } },
    h('h4', {}, title, p.warmup ? h('small', { class: 'muted' }, ` · warm-up ${p.warmup.join(', ')}`) : null),
    usage.length ? usage.map((u) => h('div', { class: 'limit-usage' },
      meter(u.used, u.limit, name(u.key)),
      u.resets_at ? h('small', { class: 'muted' }, 'a slot frees ', timeEl(u.resets_at)) : null))
      : h('p', { class: 'empty' }, 'No sends in the current window.'));
}

function limitsSection(policies, inboxName) {
  if (!policies.length) return h('p', { class: 'empty' }, 'No rate limits. Add one with POST /v1/limits (or `mailroom limits add`).');
  return SCOPES.map(([scope, label]) => {
    const ps = policies.filter((p) => p.scope === scope);
    return ps.length ? h('div', { class: 'panel limit-group' }, h('h3', {}, label), ps.map((p) => policyBlock(p, inboxName))) : null;
  });
}

/** The x label of a bucket: the hour for hourly buckets, the date for daily ones (local time, as the user reads clocks). */
const bucketLabel = (iso, bucket) => {
  const d = new Date(iso);
  return bucket === 'hour'
    ? d.toLocaleString(undefined, { month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit' })
    : d.toLocaleDateString(undefined, { month: 'short', day: '2-digit' });
};

function bounceSection(stats) {
  const tot = stats.data.reduce((a, b) => ({
    sent: a.sent + b.sent, bounced: a.bounced + b.bounced, hard: a.hard + b.hard_bounced, complained: a.complained + b.complained, risk: a.risk + b.duplicate_risk,
  }), { sent: 0, bounced: 0, hard: 0, complained: 0, risk: 0 });
  const finished = tot.sent + tot.bounced;
  // Buckets where nothing finished have no rate; they are drawn at 0 so the time axis stays continuous.
  const points = stats.data.map((b) => ({ x: bucketLabel(b.start, stats.bucket), y: b.bounce_rate ?? 0 }));
  return [
    h('dl', { class: 'kv stats-totals' },
      h('dt', {}, 'Delivered'), h('dd', { dataset: { stat: 'sent' } }, String(tot.sent)),
      h('dt', {}, 'Bounced'), h('dd', { dataset: { stat: 'bounced' } }, `${tot.bounced} (${tot.hard} hard)`),
      h('dt', {}, 'Complaints'), h('dd', { dataset: { stat: 'complained' } }, String(tot.complained)),
      // Attempts whose reply was lost after the message went out: each retry may have delivered it twice.
      h('dt', { title: 'Attempts whose reply was lost after the whole message was sent; the retry may have delivered a second copy' }, 'Possible duplicates'),
      h('dd', { dataset: { stat: 'duplicate_risk' } }, String(tot.risk)),
      h('dt', {}, 'Bounce rate'), h('dd', { dataset: { stat: 'bounce_rate' } }, finished ? pct(tot.bounced / finished) : '— (nothing sent)')),
    // Clipped: the chart's screen-reader table is visually hidden but still as wide as its text,
    // which would widen the page on a phone.
    h('div', { class: 'chart-clip' }, lineChart(points, { title: `Bounce rate per ${stats.bucket} (bounced of delivered + bounced)`, yLabel: 'bounce rate', format: pct })),
    h('p', { class: 'hint' }, `${stats.bucket === 'hour' ? 'An hour' : 'A day'} in which nothing was delivered or bounced is drawn at 0.`),
  ];
}

function pausedSection(domains) {
  const paused = domains.filter((d) => d.paused_at);
  if (!paused.length) return h('p', { class: 'empty' }, 'No sending domain is paused.');
  return table(paused, [
    { label: 'Domain', cell: (d) => h('a', { href: '#/domains' }, d.name) },
    { label: 'Paused', cell: (d) => timeEl(d.paused_at) },
    { label: 'Why', cell: (d) => d.pause_reason ?? '' },
  ], { caption: 'Sending domains paused by their bounce rate (resume them under Domains)' });
}

function throttleSection(rows) {
  return table(rows, [
    { label: 'Recipient domain', cell: (r) => r.domain },
    { label: 'Waiting', class: 'num', cell: (r) => String(r.held) },
    { label: 'Cause', cell: (r) => h('span', { class: 'badges' },
      r.rate_limited ? badge(`${r.rate_limited} rate-limited`, 'warn', 'held back by a shared rate limit') : null,
      r.deferred ? badge(`${r.deferred} deferred by server`, 'bad', 'the remote server answered 4xx or could not be reached') : null) },
    { label: 'Next attempt', cell: (r) => timeEl(r.next_attempt_at) },
    { label: 'Last server reply', cell: (r) => (r.last_response ? h('code', { class: 'smtp-reply' }, r.last_response) : '') },
  ], { caption: 'Recipient domains with mail waiting for a later attempt', empty: 'No recipient domain is throttled: no mail is waiting.' });
}

/** The suppression list, newest first, paged by the API's cursor, with a lookup by address. */
function suppressionList(ctx) {
  const { api, can } = ctx;
  const rows = [];
  let cursor = null;
  const body = h('div');
  const more = h('button', { type: 'button', hidden: true }, 'Load more suppressions');
  const search = h('form', { class: 'inline', role: 'search', 'aria-label': 'Find a suppressed address' },
    field('Address', 'address', { type: 'email', placeholder: 'exact address; empty: all' }),
    h('button', { type: 'submit' }, 'Find'));
  const load = async (reset) => {
    if (reset) { rows.length = 0; cursor = null; }
    const address = String(new FormData(search).get('address') ?? '').trim();
    const page = await api.get(`/v1/suppressions${api.qs({ limit: 50, cursor, address })}`);
    rows.push(...page.data);
    cursor = page.next_cursor;
    more.hidden = !cursor;
    draw();
  };
  const remove = (s) => {
    const yes = actionButton(`Remove ${s.address}`, async () => {
      await api.del(`/v1/suppressions/${encodeURIComponent(s.id)}`);
      announce(`${s.address} may be sent to again.`, 'good');
      d.close();
      await load(true);
    }, { kind: 'danger' });
    const d = dialog('Remove suppression?', h('p', {}, `Mail to ${s.address} will be sent again. It was suppressed for: ${REASONS[s.reason]?.[0] ?? s.reason}.`), { actions: [yes] });
  };
  const draw = () => replace(body, table(rows, [
    { label: 'Address', cell: (s) => s.address },
    { label: 'Reason', cell: (s) => badge(...(REASONS[s.reason] ?? [s.reason, 'muted'])) },
    { label: 'Scope', cell: (s) => (s.scope === 'global' ? 'everywhere' : `${s.scope} ${s.scope_value ?? ''}`) },
    { label: 'Detail', cell: (s) => (s.detail ? h('span', { class: 'detail' }, s.detail) : '') },
    { label: 'Since', cell: (s) => timeEl(s.created_at) },
    ...(can('admin') ? [{ label: 'Actions', cell: (s) => h('button', { type: 'button', class: 'danger', title: `Remove the suppression of ${s.address}`, onclick: () => remove(s) }, 'Remove') }] : []),
  ], { caption: 'Suppressed addresses, newest first', empty: 'No suppressed address.' }));
  search.addEventListener('submit', (e) => { e.preventDefault(); load(true).catch(showError); });
  more.addEventListener('click', () => load(false).catch(showError));
  return { el: h('div', {}, search, body, more), load, get paged() { return rows.length > 50; } };
}

export async function healthView(ctx) {
  const { api, root } = ctx;
  let bucket = 'hour';
  const parts = { limits: h('div'), bounce: h('div'), paused: h('div'), throttles: h('div') };
  const bucketSelect = h('select', { id: 'health-bucket' }, h('option', { value: 'hour' }, 'Hourly, last 48 hours'), h('option', { value: 'day' }, 'Daily, last 30 days'));
  const suppressions = suppressionList(ctx);

  // Inbox ids are what the limits are keyed by; people know inboxes by address.
  const inboxes = new Map();
  const inboxName = (id) => inboxes.get(id) ?? id;
  const loadInboxes = async () => {
    const page = await api.get('/v1/inboxes?limit=200');
    for (const i of page.data) inboxes.set(i.id, i.address);
  };

  const refresh = async () => {
    const [limits, stats, throttles, domains] = await Promise.all([
      api.get('/v1/limits'), api.get(`/v1/stats/sending${api.qs({ bucket })}`), api.get('/v1/stats/throttles'), api.get('/v1/domains'),
    ]);
    if (!ctx.alive()) return;
    replace(parts.limits, limitsSection(limits.data, inboxName));
    replace(parts.bounce, bounceSection(stats));
    replace(parts.paused, pausedSection(domains.data));
    replace(parts.throttles, throttleSection(throttles.data));
  };
  bucketSelect.addEventListener('change', () => { bucket = bucketSelect.value; refresh().catch(showError); });

  replace(root, h('h1', {}, 'Sending health'),
    section('Rate limits', h('p', { class: 'hint' }, 'Sends in the current window of each budget, shared by every agent and token. Excess waits; it is never dropped.'), parts.limits),
    section('Bounce rate',
      h('div', { class: 'field inline-field' }, h('label', { for: 'health-bucket' }, 'Period'), bucketSelect),
      parts.bounce),
    section('Paused sending domains', parts.paused),
    section('Throttled recipient domains', parts.throttles),
    section('Suppressions', suppressions.el));
  await Promise.all([loadInboxes().catch(() => {}), suppressions.load(true)]);
  await refresh();

  // Outcomes move the numbers: refresh on sending events, at most once a second (throttled, not
  // debounced: under a steady stream of sends a debounce would never fire). The suppression list
  // is refreshed too unless the user paged into it (reloading would throw their place away).
  let timer = null;
  ctx.cleanup(ctx.live.on((e) => {
    if (timer || !/^message\.(sent|bounced|complained|deferred|suppressed|failed|unsubscribed)$|^domain\.(throttled|resumed)$/.test(e.type)) return;
    timer = setTimeout(() => {
      timer = null;
      if (!ctx.alive()) return;
      refresh().catch(() => {});
      if (!suppressions.paged) suppressions.load(true).catch(() => {});
    }, 1000);
  }));
  ctx.cleanup(() => clearTimeout(timer));
}
