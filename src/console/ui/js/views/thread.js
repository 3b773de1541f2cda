// A thread: its messages in order, each with direction, verdicts and their signals, kind, the
// extracted reply, the agent view, the HTML body (sanitised by the server, shown in a sandboxed
// frame), attachments and the raw message as downloads, and reply / release actions.
import { h, replace, timeEl, badge, toneOf, fmtAddr, fmtBytes, actionButton, announce, showError } from '../dom.js';
import { compose } from '../compose.js';

/**
 * The frame's own policy, on top of the console's (which it inherits) and of the empty sandbox
 * attribute (no scripts, no same-origin, no forms, no popups, no top navigation): nothing loads.
 */
const FRAME_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src 'none'; form-action 'none'";
const frameDoc = (html) => `<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="${FRAME_CSP}">`
  + '<style>body{font:14px/1.45 system-ui,sans-serif;margin:12px;color:#1d1d1b;overflow-wrap:anywhere}</style></head><body>'
  + `${html}</body></html>`;

/** Downloads a protected file (the API needs the bearer token, so a plain link would not do). */
async function download(ctx, path, filename) {
  const res = await ctx.api.raw(path);
  const blob = await res.blob();
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: filename, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

function authBadges(auth) {
  if (!auth) return [];
  const dkim = auth.dkim.find((d) => d.result === 'pass' && d.aligned) ?? auth.dkim[0];
  return [
    badge(`SPF ${auth.spf.result}`, toneOf(auth.spf.result), auth.spf.domain ? `SPF for ${auth.spf.domain}` : 'SPF'),
    badge(`DKIM ${dkim ? dkim.result : 'none'}`, toneOf(dkim ? dkim.result : 'none'), dkim?.domain ? `DKIM d=${dkim.domain}${dkim.aligned ? ' (aligned)' : ''}` : 'no DKIM signature'),
    badge(`DMARC ${auth.dmarc.result}`, toneOf(auth.dmarc.result), auth.dmarc.domain ? `DMARC for ${auth.dmarc.domain}, policy ${auth.dmarc.policy ?? 'none'}` : 'DMARC'),
  ];
}

const injectionBadge = (inj) => (inj ? badge(`Injection risk: ${inj.level} (${inj.score.toFixed(2)})`, inj.level === 'high' ? 'bad' : inj.level === 'medium' ? 'warn' : inj.level === 'low' ? 'good' : 'muted', 'prompt-injection risk, scored by Mailroom') : null);

function signalList(title, signals, open = false) {
  if (!signals?.length) return null;
  return h('details', { open },
    h('summary', {}, `${title} (${signals.length})`),
    h('ul', { class: 'signals' }, signals.map((s) => h('li', {}, h('code', {}, s.kind), s.location ? ` in ${s.location}` : '', s.weight != null ? ` · weight ${s.weight}` : '', s.evidence ? [': ', h('q', {}, s.evidence)] : ''))));
}

function kindBadge(m) {
  if (!m.kind) return null;
  const label = m.kind === 'out_of_office' ? `out of office${m.return_date ? ` until ${m.return_date}` : ''}` : m.kind.replace(/_/g, ' ');
  return badge(label, toneOf(m.kind), m.kind_evidence?.join('; ') ?? 'message kind');
}

function renderMessage(ctx, m, onChange) {
  const { api, can } = ctx;
  const inj = m.security?.injection;
  const hiddenSignals = inj?.signals?.filter((s) => s.location === 'hidden_html') ?? [];
  const el = h('article', { class: `message ${m.direction}`, 'aria-label': `${m.direction === 'inbound' ? 'Received' : 'Sent'} message: ${m.subject ?? '(no subject)'}`, dataset: { messageId: m.id } });
  const header = h('header', {},
    h('div', { class: 'badges' },
      badge(m.direction === 'inbound' ? '↓ received' : '↑ sent', m.direction === 'inbound' ? 'info' : 'muted'),
      kindBadge(m),
      m.disposition && m.disposition !== 'delivered' ? badge(m.disposition.replace('_', ' '), toneOf(m.disposition), 'what the inbox policy decided') : null,
      ...authBadges(m.security?.auth),
      injectionBadge(inj),
      m.a2a ? badge(`a2a ${m.a2a.type}: ${m.a2a.intent}`, m.a2a.authenticated === false ? 'bad' : 'info') : null,
      m.delivery ? badge(`delivery: ${m.delivery.status}`, toneOf(m.delivery.status)) : null),
    h('div', { class: 'subject' }, m.subject ?? '(no subject)'),
    h('dl', { class: 'kv' },
      h('dt', {}, 'From'), h('dd', { class: 'from' }, fmtAddr(m.from)),
      h('dt', {}, 'To'), h('dd', {}, m.to.map(fmtAddr).join(', ') || '—'),
      m.cc.length ? [h('dt', {}, 'Cc'), h('dd', {}, m.cc.map(fmtAddr).join(', '))] : null,
      h('dt', {}, 'Date'), h('dd', {}, timeEl(m.date ?? m.received_at))),
    signalList('Injection signals', inj?.signals, inj?.level === 'high'),
    signalList('Authentication signals', m.security?.auth?.signals),
    m.parse_warnings.length ? h('p', { class: 'warn' }, `Parse warnings: ${m.parse_warnings.join('; ')}`) : null);

  const body = h('div', { class: 'body' });
  if (m.extracted_text != null && m.extracted_text !== m.text) {
    body.append(h('h3', {}, 'Reply (quoted history removed)'), h('pre', { class: 'text extracted' }, m.extracted_text));
  }
  if (hiddenSignals.length) {
    body.append(h('div', { class: 'hidden-text', role: 'note' },
      h('strong', {}, 'Hidden text in the HTML (invisible to a reader, visible to a model):'),
      h('ul', {}, hiddenSignals.map((s) => h('li', {}, h('q', {}, s.evidence))))));
  }
  if (m.text != null) body.append(h('details', { open: m.extracted_text == null || m.extracted_text === m.text }, h('summary', {}, 'Text'), h('pre', { class: 'text' }, m.text)));
  if (m.html != null) {
    const frame = h('iframe', { class: 'html-body', sandbox: '', title: `HTML body of "${m.subject ?? 'message'}" (sanitised, no scripts, no remote content)`, referrerpolicy: 'no-referrer', loading: 'lazy' });
    const note = h('p', {}, h('small', {}, 'Sanitised by the server; scripts and remote content removed, hidden text revealed and marked.'));
    const htmlDetails = h('details', { class: 'html', open: m.text == null || hiddenSignals.length > 0 }, h('summary', {}, 'HTML'), note, frame);
    let loaded = false;
    const loadHtml = async () => {
      if (loaded) return;
      loaded = true;
      const res = await api.raw(`/v1/messages/${encodeURIComponent(m.id)}/html`);
      const hidden = Number(res.headers.get('x-mailroom-hidden-elements') ?? 0);
      if (hidden) note.append(' ', badge(`${hidden} hidden element${hidden === 1 ? '' : 's'} revealed`, 'bad'));
      frame.srcdoc = frameDoc(await res.text());
    };
    htmlDetails.addEventListener('toggle', () => htmlDetails.open && loadHtml().catch(showError));
    if (htmlDetails.open) loadHtml().catch(showError);
    body.append(htmlDetails);
  }
  if (m.attachments.length) {
    body.append(h('h3', {}, 'Attachments'), h('div', { class: 'attachments' }, m.attachments.map((a) =>
      actionButton(`⤓ ${a.filename ?? a.id} (${fmtBytes(a.size)})`, () => download(ctx, `/v1/messages/${encodeURIComponent(m.id)}/attachments/${encodeURIComponent(a.id)}`, a.filename ?? a.id),
        { title: `${a.content_type}, sha256 ${a.sha256}` }))));
  }

  // The agent view: what a model is given (untrusted content fenced, hidden text neutralised).
  const agent = h('details', { class: 'agent-view' }, h('summary', {}, 'Agent view'));
  agent.addEventListener('toggle', async () => {
    if (!agent.open || agent.dataset.loaded) return;
    agent.dataset.loaded = '1';
    try {
      const v = await api.get(`/v1/messages/${encodeURIComponent(m.id)}?view=agent`);
      agent.append(h('pre', { class: 'text' }, v.text));
    } catch (err) { showError(err); }
  });

  const actions = h('div', { class: 'toolbar' },
    actionButton('Download raw (.eml)', () => download(ctx, `/v1/messages/${encodeURIComponent(m.id)}/raw`, `${m.id}.eml`)),
    m.direction === 'inbound' && can('messages:send') ? h('button', { type: 'button', onclick: async () => { if (await compose(ctx, { replyTo: m })) onChange(); } }, 'Reply') : null,
    (m.disposition === 'quarantined' || m.disposition === 'needs_human') && can('inboxes:write')
      ? actionButton('Release to inbox', async () => { await api.post(`/v1/messages/${encodeURIComponent(m.id)}/release`); announce('Released: agents reading this inbox will now see it.', 'good'); onChange(); })
      : null);
  el.append(header, body, h('div', { class: 'body' }, agent, actions));
  return el;
}

export async function threadView(ctx) {
  const { api, root, params: [threadId] } = ctx;
  const draw = async () => {
    const t = await api.get(`/v1/threads/${encodeURIComponent(threadId)}?include_held=true`);
    // Sent messages carry their delivery state on the single-message read.
    const withDelivery = await Promise.all(t.messages.map((m) => (m.direction === 'outbound' ? api.get(`/v1/messages/${encodeURIComponent(m.id)}`).catch(() => m) : m)));
    if (!ctx.alive()) return;
    const inbox = await api.get(`/v1/inboxes/${encodeURIComponent(t.inbox_id)}`).catch(() => null);
    replace(root,
      h('div', { class: 'crumbs' }, h('a', { href: '#/inboxes' }, 'Inboxes'), ' / ',
        h('a', { href: `#/inboxes/${encodeURIComponent(t.inbox_id)}` }, inbox?.address ?? t.inbox_id), ' / thread'),
      h('h1', {}, t.subject ?? '(no subject)'),
      h('p', { class: 'counts' }, `${t.message_count} message${t.message_count === 1 ? '' : 's'}, ${new Date(t.first_message_at).toLocaleString()} – ${new Date(t.last_message_at).toLocaleString()}`),
      withDelivery.map((m) => renderMessage(ctx, m, () => draw().catch(showError))));
  };
  await draw();
  let timer = null;
  ctx.cleanup(ctx.live.on((e) => {
    if (e.thread_id !== threadId || timer) return;
    timer = setTimeout(() => { timer = null; if (ctx.alive()) draw().catch(() => {}); }, 300);
  }));
  ctx.cleanup(() => clearTimeout(timer));
}
