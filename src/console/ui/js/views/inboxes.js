// Inboxes: the list (create, delete, counts) and one inbox (its threads, live, and compose).
import { h, replace, pagedTable, timeEl, badge, actionButton, field, announce, showError, virtualList, dialog } from '../dom.js';
import { compose } from '../compose.js';

export async function inboxList(ctx) {
  const { api, can, root } = ctx;
  const list = pagedTable(ctx, {
    path: (cursor, limit) => `/v1/inboxes${api.qs({ include: 'counts', limit, cursor })}`,
    pageSize: 100,
    columns: [
      { label: 'Address', cell: (i) => h('a', { href: `#/inboxes/${encodeURIComponent(i.id)}` }, i.address) },
      { label: 'Name', cell: (i) => i.display_name ?? '' },
      { label: 'Messages', class: 'num', cell: (i) => String(i.counts?.messages ?? '') },
      { label: 'Threads', class: 'num', cell: (i) => String(i.counts?.threads ?? '') },
      { label: 'Held', class: 'num', cell: (i) => (i.counts?.held ? badge(String(i.counts.held), 'warn', 'quarantined or waiting for a person') : '0') },
      { label: 'Created', cell: (i) => timeEl(i.created_at) },
      ...(can('inboxes:write') ? [{ label: 'Actions', cell: (i) => actionButton('Delete', () => confirmDelete(i), { kind: 'danger', title: `Delete ${i.address}` }) }] : []),
    ],
    caption: 'Inboxes', empty: 'No inboxes yet.',
  });
  const load = () => list.reload();

  const confirmDelete = (inbox) => new Promise((resolve) => {
    const yes = actionButton(`Delete ${inbox.address}`, async () => {
      await api.del(`/v1/inboxes/${encodeURIComponent(inbox.id)}`);
      announce(`Deleted ${inbox.address}; mail to it is refused from now on.`, 'good');
      d.close();
      await load();
    }, { kind: 'danger' });
    const d = dialog('Delete inbox?', h('p', {}, `Mail to ${inbox.address} will be refused. Its messages stay readable through the API until retention removes them.`), { actions: [yes] });
    d.addEventListener('close', resolve);
  });

  const createForm = can('inboxes:write') && !ctx.me.inbox_ids ? (() => {
    const f = h('form', { class: 'inline', 'aria-label': 'Create inbox' },
      field('Username (optional)', 'username', { placeholder: 'picked for you when empty' }),
      field('Display name (optional)', 'display_name'),
      h('button', { type: 'submit', class: 'primary' }, 'Create inbox'));
    f.addEventListener('submit', async (e) => {
      e.preventDefault();
      const data = new FormData(f);
      const req = {};
      for (const k of ['username', 'display_name']) { const v = String(data.get(k) ?? '').trim(); if (v) req[k] = v; }
      const btn = f.querySelector('button');
      btn.disabled = true;
      try {
        const inbox = await api.post('/v1/inboxes', req);
        announce(`Created ${inbox.address}`, 'good');
        f.reset();
        await load();
      } catch (err) { showError(err); } finally { btn.disabled = false; }
    });
    return f;
  })() : null;

  replace(root, h('h1', {}, 'Inboxes'), createForm, list.el);
  await load();
  // Counts move as mail arrives: refresh (debounced) on message events.
  let timer = null;
  ctx.cleanup(ctx.live.on((e) => {
    if (!/^message\.(received|sent)$/.test(e.type) && e.type !== 'inbox.created' && e.type !== 'inbox.deleted') return;
    // Throttled, not debounced: under a steady stream of mail the counts still move every half second.
    if (timer) return;
    timer = setTimeout(() => { timer = null; if (ctx.alive()) load().catch(() => {}); }, 500);
  }));
  ctx.cleanup(() => clearTimeout(timer));
}

const threadRow = (t) => h('a', { class: 'row-link', href: `#/threads/${encodeURIComponent(t.id)}` },
  h('span', { class: 'title' }, t.subject || '(no subject)'),
  h('span', { class: 'meta' }, timeEl(t.last_message_at)),
  h('span', { class: 'sub' }, `${t.message_count} message${t.message_count === 1 ? '' : 's'}`),
  h('span', { class: 'meta' }, ''));

export async function inboxDetail(ctx) {
  const { api, can, root, params: [inboxId] } = ctx;
  const inbox = await api.get(`/v1/inboxes/${encodeURIComponent(inboxId)}`);
  const counts = h('p', { class: 'counts', 'aria-live': 'polite' }, 'Counting…');
  const showCounts = (c) => replace(counts, `${c.messages} messages (${c.inbound} received, ${c.outbound} sent) in ${c.threads} threads`,
    c.held ? [' · ', badge(`${c.held} held`, 'warn', 'quarantined or waiting for a person; shown in their threads')] : '');
  // Counting a large inbox takes a while (about 130 ms at 100,000 messages, bench:console): the
  // threads do not wait for it.
  const loadCounts = () => api.get(`/v1/inboxes/${encodeURIComponent(inboxId)}?include=counts`).then((i) => ctx.alive() && showCounts(i.counts));

  // Threads, newest activity first, virtualised: an inbox of 100,000 messages scrolls as one of 10.
  let cursor = null;
  const list = virtualList({
    label: `Threads of ${inbox.address}`,
    rowHeight: 58,
    renderRow: threadRow,
    emptyText: 'No mail yet. Send some to this address over SMTP, or compose one.',
    loadMore: async () => {
      if (cursor === false) return null;
      const page = await api.get(`/v1/inboxes/${encodeURIComponent(inboxId)}/threads${api.qs({ limit: 100, cursor })}`);
      cursor = page.next_cursor ?? false;
      const got = page.data;
      if (cursor === false) got.done = true;
      return got;
    },
  });

  const composeBtn = can('messages:send') ? h('button', { type: 'button', class: 'primary', onclick: async () => { if (await compose(ctx, { inboxId })) refresh(); } }, 'Compose') : null;
  replace(root,
    h('div', { class: 'crumbs' }, h('a', { href: '#/inboxes' }, 'Inboxes'), ' / ', inbox.address),
    h('h1', {}, inbox.display_name ? `${inbox.display_name} <${inbox.address}>` : inbox.address),
    h('div', { class: 'toolbar' }, counts, h('span', { class: 'spacer' }), composeBtn),
    h('h2', {}, 'Threads'),
    list.el);
  // Counts after the first page: the embedded database has one connection, and the first rows
  // should not queue behind counting 100,000 messages.
  await list.start();
  loadCounts().catch(() => {});

  // Live: a new message in this inbox brings its thread to the top without a reload.
  const refresh = async () => {
    const page = await api.get(`/v1/inboxes/${encodeURIComponent(inboxId)}/threads?limit=20`);
    if (!ctx.alive()) return;
    list.prepend(page.data, (t) => t.id);
    await loadCounts();
  };
  let timer = null;
  ctx.cleanup(ctx.live.on((e) => {
    if (e.inbox_id !== inboxId || !/^message\./.test(e.type)) return;
    if (e.type === 'message.received') announce(`New message from ${e.data?.from ?? 'someone'}: ${e.data?.subject ?? '(no subject)'}`);
    if (timer) return; // throttled: one refresh at most every 150 ms, however fast mail comes
    timer = setTimeout(() => { timer = null; if (ctx.alive()) refresh().catch(() => {}); }, 150);
  }));
  ctx.cleanup(() => clearTimeout(timer));
}

