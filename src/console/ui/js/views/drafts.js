// Drafts awaiting approval (or, by filter, the ones already decided): each with what it would
// send, and Approve / Edit / Reject as the token allows. Approving sends: the button is disabled
// from the first click until the answer, and the API moves a draft out of `pending` once (a repeat
// gets 409 draft_not_pending), so a double click sends one message.
import { h, replace, timeEl, badge, toneOf, actionButton, announce, showError, dialog, field } from '../dom.js';

const enc = encodeURIComponent;
const STATUSES = ['pending', 'approved', 'sent', 'failed', 'rejected', 'cancelled'];
const list = (xs) => (xs?.length ? xs.join(', ') : null);

/** The inbox a draft would be sent from, by id, fetched once per view. */
function inboxNames(api) {
  const cache = new Map();
  return (id) => {
    if (!cache.has(id)) cache.set(id, api.get(`/v1/inboxes/${enc(id)}`).then((i) => i.address, () => id));
    return cache.get(id);
  };
}

/** The edit dialog: the fields given replace the stored ones; only changed fields are sent. */
function editDraft(ctx, d, onSaved) {
  const c = d.content;
  const form = h('form', { class: 'compose', 'aria-label': 'Edit draft' },
    // A reply draft goes to the message's sender unless `to` is set: leave To empty to keep that.
    field('To', 'to', { value: list(c.to) ?? '', required: !d.reply_to_message_id, placeholder: d.reply_to_message_id ? 'the sender of the message it answers' : 'someone@example.com', hint: 'Comma-separated addresses.' }),
    field('Subject', 'subject', { value: c.subject ?? '', placeholder: d.reply_to_message_id ? '"Re:" the message it answers' : '' }),
    field('Message', 'text', { type: 'textarea', value: c.text ?? '', rows: 10, required: true }));
  const save = h('button', { type: 'submit', class: 'primary' }, 'Save draft');
  form.append(h('div', { class: 'dialog-actions' }, save));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (save.disabled) return;
    const data = new FormData(form);
    const changes = {};
    const to = String(data.get('to') ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    if (to.join(',') !== (c.to ?? []).join(',') && to.length) changes.to = to;
    const subject = String(data.get('subject') ?? '');
    if (subject !== (c.subject ?? '') && subject) changes.subject = subject;
    const text = String(data.get('text') ?? '');
    if (text !== (c.text ?? '')) changes.text = text;
    if (!Object.keys(changes).length) { dlg.close(); return; }
    save.disabled = true;
    try {
      const saved = await ctx.api.post(`/v1/drafts/${enc(d.id)}/edit`, changes);
      announce('Draft saved.', 'good');
      dlg.close();
      onSaved(saved);
    } catch (err) { showError(err); save.disabled = false; }
  });
  const dlg = dialog(`Edit draft ${d.step ? `(step ${d.step})` : ''}`.trim(), form);
  form.querySelector('textarea')?.focus();
}

/** Reject, with an optional note for whoever wrote the draft. */
function rejectDraft(ctx, d, onDone) {
  const note = field('Note (optional)', 'note', { type: 'textarea', rows: 3, hint: 'Why, for the agent or person who wrote it.' });
  const yes = actionButton('Reject draft', async () => {
    const text = note.querySelector('textarea').value.trim();
    const got = await ctx.api.post(`/v1/drafts/${enc(d.id)}/reject`, text ? { note: text } : {});
    announce(d.run_id ? 'Rejected: it will never be sent, and its campaign run ends.' : 'Rejected: it will never be sent.', 'good');
    dlg.close();
    onDone(got);
  }, { kind: 'danger' });
  const dlg = dialog('Reject draft?', note, { actions: [yes] });
}

/**
 * Approve. A draft whose thread received a newer message is refused as stale (409 draft_stale):
 * the operator is asked, and may approve it anyway (force).
 */
async function approve(ctx, d, onDone, force = false) {
  try {
    const got = await ctx.api.post(`/v1/drafts/${enc(d.id)}/approve`, force ? { force: true } : {});
    announce(`Approved: sending ${got.content.subject ?? 'the draft'} now.`, 'good');
    onDone(got);
  } catch (err) {
    const code = err?.problem?.code;
    if (code === 'draft_not_pending') { announce(err.problem.detail, 'info'); onDone(null); return; }
    if (code !== 'draft_stale') throw err;
    const anyway = actionButton('Approve anyway', async () => { dlg.close(); await approve(ctx, d, onDone, true); }, { kind: 'primary' });
    const dlg = dialog('The conversation moved on', h('p', {}, err.problem.detail), { actions: [anyway] });
  }
}

function draftCard(ctx, d, from, changed) {
  const { can } = ctx;
  const c = d.content;
  const pending = d.status === 'pending';
  const replace_ = (got) => changed(got);
  const actions = pending ? [
    can('messages:send') ? actionButton('Approve', () => approve(ctx, d, replace_), { kind: 'primary', title: 'Approve and send' }) : null,
    can('drafts:write|messages:send') ? h('button', { type: 'button', onclick: () => editDraft(ctx, d, replace_) }, 'Edit') : null,
    can('drafts:write|messages:send') ? h('button', { type: 'button', class: 'danger', onclick: () => rejectDraft(ctx, d, replace_) }, 'Reject') : null,
  ].filter(Boolean) : [];
  const dt = (k, v) => (v == null || v === '' ? null : [h('dt', {}, k), h('dd', {}, v)]);
  const fromEl = h('span', {}, d.inbox_id);
  from(d.inbox_id).then((a) => { fromEl.textContent = a; });
  return h('article', { class: 'panel draft', 'aria-label': `Draft: ${c.subject ?? '(reply)'} to ${list(c.to) ?? 'the sender'}`, dataset: { draftId: d.id, status: d.status } },
    h('header', { class: 'draft-head' },
      badge(d.status, toneOf(d.status)),
      d.campaign_id ? h('a', { href: `#/campaigns/${enc(d.campaign_id)}` }, `campaign step ${d.step ?? '?'}`) : null,
      d.run_id ? h('a', { href: `#/runs/${enc(d.run_id)}` }, 'its run') : null,
      h('span', { class: 'spacer' }), h('small', {}, 'written ', timeEl(d.created_at))),
    h('dl', { class: 'kv' },
      dt('From', fromEl),
      dt('To', list(c.to) ?? (d.reply_to_message_id ? 'the sender of the message it answers' : '—')),
      dt('Cc', list(c.cc)),
      dt('Subject', c.subject ?? (d.reply_to_message_id ? '"Re:" the message it answers' : '(no subject)')),
      dt('Send at', d.send_at ? timeEl(d.send_at) : null),
      dt('Attachments', c.attachments?.length ? c.attachments.map((a) => a.filename).join(', ') : null),
      dt('Note', d.review_note),
      dt('Problem', d.error ? `${d.error.code}: ${d.error.message}` : null),
      dt('Sent', d.message_id ? h('span', {}, timeEl(d.sent_at), ` as ${d.message_id}`) : null)),
    h('pre', { class: 'text draft-text' }, c.text ?? (c.html ? '(HTML only)' : '')),
    actions.length ? h('div', { class: 'toolbar' }, actions) : null);
}

export async function draftsView(ctx) {
  const { api, root } = ctx;
  const from = inboxNames(api);
  let status = 'pending';
  let cursor = null;
  const drafts = [];
  const listEl = h('div', { class: 'drafts', 'aria-live': 'polite' });
  const count = h('span', { class: 'counts' });
  const more = h('button', { type: 'button', class: 'more', hidden: true }, 'Load more');
  const filter = field('Show', 'draft-status', { type: 'select', value: status, options: [...STATUSES.map((s) => [s, s === 'pending' ? 'awaiting approval' : s]), ['', 'all']] });

  const draw = () => {
    count.textContent = `${drafts.length}${cursor ? '+' : ''} ${status === 'pending' ? 'awaiting approval' : status || 'drafts'}`;
    replace(listEl, drafts.length
      ? drafts.map((d) => draftCard(ctx, d, from, (got) => changed(d, got)))
      : h('p', { class: 'empty' }, status === 'pending' ? 'No drafts are waiting for approval.' : 'No drafts.'));
  };
  // After an action the card shows the draft's new state at once (its buttons gone); the next
  // refresh drops it from a "pending" list.
  const changed = (old, got) => {
    // By id: a live refresh may have replaced the list while a dialog was open.
    const i = drafts.findIndex((x) => x.id === old.id);
    if (i >= 0 && got) drafts[i] = got;
    draw();
    if (!got) load(true).catch(showError);
  };
  const load = async (reset) => {
    const limit = reset ? Math.max(50, drafts.length) : 50;
    const page = await api.get(`/v1/drafts${api.qs({ status, limit, cursor: reset ? null : cursor })}`);
    if (!ctx.alive()) return;
    if (reset) drafts.length = 0;
    drafts.push(...page.data);
    cursor = page.next_cursor;
    more.hidden = !cursor;
    draw();
  };
  filter.querySelector('select').addEventListener('change', (e) => { status = e.target.value; load(true).catch(showError); });
  more.addEventListener('click', () => load(false).catch(showError));

  replace(root, h('h1', {}, 'Drafts'),
    h('p', {}, 'Messages written by agents and campaign steps with approval required. Nothing here is sent until someone approves it.'),
    h('div', { class: 'toolbar' }, filter, h('span', { class: 'spacer' }), count),
    listEl, more);
  await load(true);

  // Live: drafts written, approved, sent or cancelled elsewhere (an open edit dialog is not part
  // of the list, so a redraw under it loses nothing).
  let timer = null;
  ctx.cleanup(ctx.live.on((e) => {
    if (!/^draft\./.test(e.type)) return;
    clearTimeout(timer);
    timer = setTimeout(() => { if (ctx.alive()) load(true).catch(() => {}); }, 500);
  }));
  ctx.cleanup(() => clearTimeout(timer));
}
