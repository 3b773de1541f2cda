// Sending domains: the DNS records to publish, what the last verification found for each, and
// Verify / Resume. The domain API is admin-only (src/api/routes/domains.ts).
import { h, replace, table, badge, timeEl, actionButton, field, announce, showError } from '../dom.js';

/** The verification result key of each record's purpose (outbound/domains.ts `verify`). */
const CHECK_OF = { inbound: 'mx', spf: 'spf', dkim: 'dkim', dmarc: 'dmarc' };
const PURPOSE = {
  inbound: 'Receiving (MX): mail to this domain reaches Mailroom. Optional for sending.',
  spf: 'SPF: which hosts may send for the domain.',
  dkim: 'DKIM: the public key of the signature Mailroom puts on every message.',
  dmarc: 'DMARC: what receivers do with mail failing SPF and DKIM; starts at p=none (monitor).',
};
const CHECK_TONE = { pass: 'good', missing: 'bad', error: 'warn' };
const CHECK_TEXT = { pass: 'published', missing: 'not found', error: 'lookup failed' };

/**
 * A DNS value people must copy exactly (a DKIM key is 400 characters): selectable as one unit with
 * a click, and a Copy button where the browser allows the clipboard (a secure context).
 */
function copyable(value, label) {
  const code = h('code', { class: 'dns-value', tabindex: '0', 'aria-label': `${label}: ${value}` }, value);
  const selectAll = () => { const r = document.createRange(); r.selectNodeContents(code); const s = getSelection(); s.removeAllRanges(); s.addRange(r); };
  code.addEventListener('focus', selectAll);
  const copy = navigator.clipboard && window.isSecureContext
    ? h('button', { type: 'button', class: 'copy', title: `Copy ${label}`, 'aria-label': `Copy ${label}`, onclick: async () => {
      try { await navigator.clipboard.writeText(value); announce(`Copied ${label}`, 'good'); } catch { selectAll(); announce('Selected: press Ctrl+C (⌘C) to copy'); }
    } }, 'Copy')
    : null;
  return h('div', { class: 'copyable' }, code, copy);
}

/** Gives each cell its column's name, so a phone can show the rows as labelled cards (console.css). */
function labelCells(wrap) {
  const labels = [...wrap.querySelectorAll('thead th')].map((th) => th.textContent);
  for (const tr of wrap.querySelectorAll('tbody tr')) [...tr.children].forEach((td, i) => { td.dataset.label = labels[i] ?? ''; });
  return wrap;
}

function recordsTable(d) {
  const checks = d.verification ?? {};
  return labelCells(table(d.records, [
    { label: 'Purpose', cell: (r) => h('span', { title: PURPOSE[r.purpose] }, r.purpose.toUpperCase()) },
    { label: 'Type', cell: (r) => r.type },
    { label: 'Name', cell: (r) => copyable(r.name, `${r.purpose} record name`) },
    { label: 'Value', cell: (r) => [r.priority != null ? h('span', { class: 'muted' }, `priority ${r.priority} `) : null, copyable(r.value, `${r.purpose} record value`)] },
    { label: 'Found', cell: (r) => {
      const c = checks[CHECK_OF[r.purpose]];
      return c ? badge(CHECK_TEXT[c] ?? c, CHECK_TONE[c] ?? 'muted') : badge('not checked', 'muted');
    } },
  ], { caption: `DNS records to publish for ${d.name}`, rowAttrs: (r) => ({ dataset: { purpose: r.purpose } }) }));
}

function stateBadges(d) {
  return h('span', { class: 'badges' },
    d.verified ? badge('Verified', 'good', d.verified_at ? `since ${d.verified_at}` : null) : badge('Not verified', 'warn', 'SPF, DKIM and DMARC must all be published'),
    d.paused_at ? badge('Sending paused', 'bad', d.pause_reason ?? '') : null);
}

export async function domainsView(ctx) {
  const { api, can, root } = ctx;
  const list = h('div');
  const admin = can('admin');

  /** One domain's panel; Verify and Resume re-draw it in place from the API's answer. */
  const panel = (d) => {
    const el = h('section', { class: 'panel domain', 'aria-labelledby': `dom-${d.id}`, dataset: { domain: d.name } });
    const draw = (x) => {
      const checked = x.verification?.checked_at;
      replace(el,
        h('div', { class: 'toolbar' },
          h('h2', { id: `dom-${x.id}` }, x.name), stateBadges(x), h('span', { class: 'spacer' }),
          admin ? actionButton('Verify', async () => {
            const v = await api.post(`/v1/domains/${encodeURIComponent(x.name)}/verify`);
            draw(v);
            announce(v.verified ? `${v.name} is verified` : `${v.name}: some records are not published yet`, v.verified ? 'good' : 'info');
          }, { title: `Look up the DNS records of ${x.name} now` }) : null,
          admin && x.paused_at ? actionButton('Resume sending', async () => {
            const v = await api.post(`/v1/domains/${encodeURIComponent(x.name)}/resume`);
            draw(v);
            announce(`Sending from ${v.name} resumed; its held mail goes now`, 'good');
          }, { kind: 'primary', title: `Resume sending from ${x.name}` }) : null),
        x.paused_at ? h('p', { class: 'error' }, 'Sending paused ', timeEl(x.paused_at), x.pause_reason ? `: ${x.pause_reason}` : '', '. Held mail is kept and goes when sending resumes.') : null,
        h('p', { class: 'muted' }, `DKIM selector ${x.dkim_selector} · added `, timeEl(x.created_at), ' · ',
          checked ? ['last checked ', timeEl(checked)] : 'never checked: publish the records, then Verify'),
        recordsTable(x));
    };
    draw(d);
    return el;
  };

  const load = async () => {
    const { data } = await api.get('/v1/domains');
    if (!ctx.alive()) return;
    replace(list, data.length ? data.map(panel) : h('p', { class: 'empty' }, 'No sending domain yet.'));
  };

  const addForm = admin ? (() => {
    const f = h('form', { class: 'inline', 'aria-label': 'Add a sending domain' },
      field('Domain name', 'name', { required: true, placeholder: 'mail.example.com' }),
      h('button', { type: 'submit', class: 'primary' }, 'Add domain'));
    f.addEventListener('submit', async (e) => {
      e.preventDefault();
      const btn = f.querySelector('button');
      btn.disabled = true;
      try {
        const d = await api.post('/v1/domains', { name: String(new FormData(f).get('name')).trim() });
        announce(`Added ${d.name}: publish its DNS records, then Verify`, 'good');
        f.reset();
        await load();
        list.querySelector(`[data-domain="${CSS.escape(d.name)}"] h2`)?.scrollIntoView({ block: 'start' });
      } catch (err) { showError(err); } finally { btn.disabled = false; }
    });
    return f;
  })() : null;

  replace(root, h('h1', {}, 'Domains'),
    h('p', { class: 'hint' }, 'Publish these records at your DNS provider. Sending needs SPF, DKIM and DMARC; MX only matters to receive mail at the domain.'),
    addForm, list);
  await load();

  // Another operator (or the auto-pause) changes a domain: re-read the list.
  ctx.cleanup(ctx.live.on((e) => { if (/^domain\./.test(e.type)) load().catch(() => {}); }));
}
