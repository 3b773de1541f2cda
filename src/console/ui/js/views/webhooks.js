// Webhook endpoints: each with its state, its recent deliveries (status, attempts, the receiver's
// HTTP status) and replay; a form to register one. Scope webhooks:write (src/api/routes/webhooks.ts);
// a token limited to some inboxes sees the endpoints that watch only those.
import { h, replace, table, badge, timeEl, actionButton, field, announce, showError, dialog } from '../dom.js';

const PAGE = 20;
const STATUS_TONE = { succeeded: 'good', failed: 'bad', pending: 'warn' };

const httpTone = (code) => (code == null ? 'muted' : code < 300 ? 'good' : code < 500 ? 'warn' : 'bad');

/** Gives each cell its column's name, so a phone can show the rows as labelled cards (console.css). */
function labelCells(wrap) {
  const labels = [...wrap.querySelectorAll('thead th')].map((th) => th.textContent);
  for (const tr of wrap.querySelectorAll('tbody tr')) [...tr.children].forEach((td, i) => { td.dataset.label = labels[i] ?? ''; });
  return wrap;
}

// What an operator looks for first (did it arrive, what did the receiver say) comes first.
function deliveriesTable(rows, url) {
  return labelCells(table(rows, [
    { label: 'Status', cell: (d) => badge(d.status, STATUS_TONE[d.status] ?? 'muted') },
    { label: 'Response', cell: (d) => [d.last_status != null ? badge(`HTTP ${d.last_status}`, httpTone(d.last_status)) : null, d.last_error ? h('span', { class: 'detail' }, ` ${d.last_error}`) : null, d.last_status == null && !d.last_error ? '—' : null] },
    { label: 'Attempts', class: 'num', cell: (d) => String(d.attempts) },
    { label: 'Queued', cell: (d) => timeEl(d.created_at) },
    { label: 'Delivered / next try', cell: (d) => (d.delivered_at ? timeEl(d.delivered_at) : d.next_attempt_at ? ['next ', timeEl(d.next_attempt_at)] : '—') },
    { label: 'Event', cell: (d) => h('code', {}, d.event_id) },
    { label: 'Delivery', cell: (d) => h('code', { title: 'the webhook-id header: the same on every retry and replay' }, d.id) },
  ], { caption: `Recent deliveries to ${url}`, empty: 'No delivery yet: events from the endpoint’s registration on are delivered to it.', rowAttrs: (d) => ({ dataset: { delivery: d.id, status: d.status } }) }));
}

/** Shows a new secret once, in a dialog, selectable for copying: the API never shows it again. */
function showSecret(title, secret, note) {
  const input = h('input', { id: 'wh-secret', type: 'text', readonly: true, value: secret, spellcheck: 'false', onfocus: (e) => e.target.select() });
  dialog(title, h('div', {},
    h('p', {}, note),
    h('div', { class: 'field' }, h('label', { for: 'wh-secret' }, 'Signing secret'), input)));
  input.focus();
}

/** One endpoint: state and actions, deliveries (paged, filterable by status), replay. */
function endpointPanel(ctx, w, reload) {
  const { api } = ctx;
  const el = h('section', { class: 'panel webhook', 'aria-labelledby': `wh-${w.id}`, dataset: { webhook: w.id } });
  const deliveries = h('div');
  const rows = [];
  let cursor = null;
  const status = h('select', { id: `wh-status-${w.id}` }, ['', 'pending', 'succeeded', 'failed'].map((s) => h('option', { value: s }, s || 'all')));
  const more = h('button', { type: 'button', hidden: true }, 'Older deliveries');
  const load = async (reset) => {
    if (reset) { rows.length = 0; cursor = null; }
    const page = await api.get(`/v1/webhooks/${encodeURIComponent(w.id)}/deliveries${api.qs({ limit: PAGE, cursor, status: status.value })}`);
    if (!ctx.alive()) return;
    rows.push(...page.data);
    cursor = page.next_cursor;
    more.hidden = !cursor;
    replace(deliveries, deliveriesTable(rows, w.url));
  };
  status.addEventListener('change', () => load(true).catch(showError));
  more.addEventListener('click', () => load(false).catch(showError));

  // Replay: every event the endpoint watches after a point in the log (an event id or a cursor),
  // or every retained one. Receivers see the original webhook-id, so the ones that dedupe stay right.
  const afterId = `wh-after-${w.id}`;
  const after = h('input', { id: afterId, name: 'after', placeholder: 'evt_… or a cursor; empty: every retained event', autocomplete: 'off', 'aria-describedby': `${afterId}-help` });
  const replay = async () => {
    const r = await api.post(`/v1/webhooks/${encodeURIComponent(w.id)}/replay${api.qs({ after: after.value.trim() })}`);
    announce(r.queued ? `Replaying ${r.queued} event${r.queued === 1 ? '' : 's'} to ${w.url}` : 'Nothing to replay after that point', r.queued ? 'good' : 'info');
    await load(true);
  };
  const replayButton = actionButton('Replay', async () => {
    if (after.value.trim()) return replay();
    // Everything retained can be thousands of deliveries: ask first.
    const yes = actionButton('Replay every event', async () => { d.close(); await replay(); }, { kind: 'primary' });
    const d = dialog('Replay every retained event?', h('p', {}, `Every event ${w.url} watches that is still retained is delivered again, with its original webhook-id.`), { actions: [yes] });
  }, { title: `Deliver events to ${w.url} again` });

  const toggle = actionButton(w.enabled ? 'Disable' : 'Enable', async () => {
    await api.patch(`/v1/webhooks/${encodeURIComponent(w.id)}`, { enabled: !w.enabled });
    announce(`${w.url} ${w.enabled ? 'disabled' : 'enabled'}`, 'good');
    await reload();
  }, { title: w.enabled ? `Stop delivering to ${w.url}` : `Deliver to ${w.url} again (failed deliveries are not retried: replay them)` });
  const rotate = actionButton('Rotate secret', async () => {
    const r = await api.post(`/v1/webhooks/${encodeURIComponent(w.id)}/rotate_secret`);
    showSecret('New signing secret', r.secret, `The previous secret keeps signing beside this one until ${new Date(r.previous_secret_expires_at).toLocaleString()}: update the receiver before then.`);
  }, { title: `New signing secret for ${w.url}` });
  const remove = h('button', { type: 'button', class: 'danger', title: `Delete ${w.url}`, onclick: () => {
    const yes = actionButton(`Delete ${w.url}`, async () => {
      await api.del(`/v1/webhooks/${encodeURIComponent(w.id)}`);
      announce(`Deleted ${w.url}`, 'good');
      d.close();
      await reload();
    }, { kind: 'danger' });
    const d = dialog('Delete webhook endpoint?', h('p', {}, `No more events go to ${w.url}, and its delivery history is deleted.`), { actions: [yes] });
  } }, 'Delete');

  replace(el,
    h('div', { class: 'toolbar' },
      h('h2', { id: `wh-${w.id}`, class: 'wh-url' }, w.url),
      w.enabled ? badge('enabled', 'good') : badge('disabled', 'bad', w.disabled_reason ?? ''),
      h('span', { class: 'spacer' }), toggle, rotate, remove),
    !w.enabled && w.disabled_reason ? h('p', { class: 'error' }, `Disabled: ${w.disabled_reason}`) : null,
    h('dl', { class: 'kv' },
      w.description ? [h('dt', {}, 'Description'), h('dd', {}, w.description)] : null,
      h('dt', {}, 'Events'), h('dd', {}, w.event_types?.length ? h('span', { class: 'badges' }, w.event_types.map((t) => badge(t, 'info'))) : 'all'),
      h('dt', {}, 'Inboxes'), h('dd', {}, w.inbox_ids?.length ? w.inbox_ids.join(', ') : 'all'),
      h('dt', {}, 'Registered'), h('dd', {}, timeEl(w.created_at))),
    h('form', { class: 'inline replay', 'aria-label': `Replay events to ${w.url}`, onsubmit: (e) => { e.preventDefault(); replayButton.click(); } },
      h('div', { class: 'field' }, h('label', { for: afterId }, 'Replay events after'), after,
        h('small', { id: `${afterId}-help` }, 'Events after this one are delivered again.')),
      replayButton),
    h('div', { class: 'toolbar' }, h('h3', {}, 'Recent deliveries'), h('span', { class: 'spacer' }),
      h('label', { for: `wh-status-${w.id}` }, 'Status '), status),
    deliveries, more);
  return { el, load, get pending() { return rows.some((d) => d.status === 'pending'); }, get paged() { return rows.length > PAGE; } };
}

function createForm(ctx, onCreated) {
  const f = h('form', { class: 'inline', 'aria-label': 'Register a webhook endpoint' },
    field('Endpoint URL', 'url', { type: 'url', required: true, placeholder: 'https://agents.example.com/hooks/mailroom' }),
    field('Event types (optional)', 'event_types', { placeholder: 'message.received, message.bounced', hint: 'Comma-separated; empty: every event.' }),
    field('Description (optional)', 'description'),
    h('button', { type: 'submit', class: 'primary' }, 'Register endpoint'));
  f.addEventListener('submit', async (e) => {
    e.preventDefault();
    const data = new FormData(f);
    const types = String(data.get('event_types') ?? '').split(/[\s,]+/).filter(Boolean);
    const description = String(data.get('description') ?? '').trim();
    const btn = f.querySelector('button[type=submit]');
    btn.disabled = true;
    try {
      const w = await ctx.api.post('/v1/webhooks', { url: String(data.get('url')).trim(), ...(types.length ? { event_types: types } : {}), ...(description ? { description } : {}) });
      f.reset();
      await onCreated();
      showSecret('Endpoint registered', w.secret, `Verify each delivery to ${w.url} with this secret (Standard Webhooks signatures). It is shown only now.`);
    } catch (err) { showError(err); } finally { btn.disabled = false; }
  });
  return f;
}

export async function webhooksView(ctx) {
  const { api, root } = ctx;
  const list = h('div');
  const create = h('details', { class: 'panel create' }, h('summary', {}, 'Register an endpoint'), null);
  let panels = [];
  const load = async () => {
    const { data } = await api.get('/v1/webhooks');
    if (!ctx.alive()) return;
    panels = data.map((w) => endpointPanel(ctx, w, load));
    replace(list, panels.length ? panels.map((p) => p.el) : h('p', { class: 'empty' }, 'No webhook endpoint yet.'));
    // With nothing registered, registering is the one thing to do here.
    if (!panels.length) create.open = true;
    await Promise.all(panels.map((p) => p.load(true)));
  };
  create.append(createForm(ctx, load));
  replace(root, h('h1', {}, 'Webhooks'), create, list);
  await load();

  // Any event may become a delivery, and deliveries change state without an event of their own
  // (the dispatcher records attempts, not events): refresh on events, quickly while any delivery
  // is pending, and every 10 s anyway (a token without messages:read has no event stream).
  // A panel the user paged into is left alone.
  const refresh = () => Promise.all(panels.filter((p) => !p.paged).map((p) => p.load(true))).catch(() => {});
  let timer = null;
  let due = Infinity;
  // Schedules a refresh in `ms` unless one is already due sooner: a steady stream of events
  // must not keep pushing it back.
  const soon = (ms) => {
    if (Date.now() + ms >= due) return;
    clearTimeout(timer);
    due = Date.now() + ms;
    timer = setTimeout(async () => {
      due = Infinity;
      if (!ctx.alive()) return;
      await refresh();
      soon(panels.some((p) => p.pending) ? 1500 : 10_000);
    }, ms);
  };
  ctx.cleanup(ctx.live.on((e) => {
    // A disabled endpoint changes its own state: redraw it. Anything else only adds deliveries.
    if (e.type === 'webhook.disabled') { load().catch(() => {}); return; }
    soon(400);
  }));
  soon(panels.some((p) => p.pending) ? 1500 : 10_000);
  ctx.cleanup(() => clearTimeout(timer));
}
