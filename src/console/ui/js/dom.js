// DOM helpers for the console. Everything from the API is put in the page as text nodes or
// attribute values through h(): nothing received is ever parsed as HTML here (received HTML
// bodies go, sanitised by the server, into a sandboxed frame; see views/thread.js).

/** h('a', { href: '#/x', onclick: fn, class: 'b' }, 'text', child…) — children: strings, nodes, arrays, null. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'style' && typeof v === 'object') Object.assign(el.style, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replaces an element's content. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

export const fmtTime = (iso) => {
  if (!iso) return '—';
  const d = new Date(iso);
  return d.toLocaleString(undefined, { year: 'numeric', month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' });
};
export const timeEl = (iso) => h('time', { datetime: iso ?? '' , title: iso ?? '' }, fmtTime(iso));
export const fmtBytes = (n) => (n < 1024 ? `${n} B` : n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KB` : `${(n / 1048576).toFixed(1)} MB`);
export const fmtAddr = (a) => (a ? (a.name ? `${a.name} <${a.address}>` : a.address) : '—');
export const fmtMs = (ms) => (ms < 1000 ? `${Math.round(ms)} ms` : ms < 120_000 ? `${(ms / 1000).toFixed(1)} s` : `${(ms / 60000).toFixed(1)} min`);

/** A badge: tone is good | warn | bad | info | muted. `label` is what a screen reader hears. */
export const badge = (text, tone = 'muted', title) => h('span', { class: `badge ${tone}`, title: title ?? null }, text);

export function toneOf(result) {
  if (['pass', 'low', 'human', 'delivered', 'sent', 'done', 'approved', 'succeeded', 'verified', 'active', 'running'].includes(result)) return 'good';
  if (['fail', 'high', 'bounce', 'bounced', 'quarantined', 'dead', 'failed', 'complaint', 'rejected', 'permerror'].includes(result)) return 'bad';
  if (['softfail', 'medium', 'neutral', 'temperror', 'flagged', 'needs_human', 'deferred', 'pending', 'out_of_office', 'auto_reply', 'paused', 'throttled'].includes(result)) return 'warn';
  return 'muted';
}

/** A table from rows; columns: [{ label, cell: (row) => node|string, class? }]. */
export function table(rows, columns, { caption, empty = 'Nothing here yet.', rowAttrs } = {}) {
  if (!rows.length) return h('p', { class: 'empty' }, empty);
  return h('div', { class: 'table-wrap' }, h('table', {},
    caption ? h('caption', {}, caption) : null,
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.class ?? null }, c.label)))),
    h('tbody', {}, rows.map((r) => h('tr', rowAttrs ? rowAttrs(r) : {}, columns.map((c) => h('td', { class: c.class ?? null }, c.cell(r)))))),
  ));
}

/**
 * A table of a cursor-paginated list with a "Load more" button. `path(cursor, limit)` builds the
 * request; `reload()` fetches again as many rows as are shown (live updates do not shorten the
 * list). Rows are drawn with table() and its options.
 */
export function pagedTable(ctx, { path, columns, pageSize = 50, ...tableOpts }) {
  const body = h('div');
  const more = h('button', { type: 'button', class: 'more', hidden: true }, 'Load more');
  const rows = [];
  let cursor = null;
  const load = async (reset) => {
    const limit = reset ? Math.min(200, Math.max(pageSize, rows.length)) : pageSize;
    const page = await ctx.api.get(path(reset ? null : cursor, limit));
    if (!ctx.alive()) return;
    if (reset) rows.length = 0;
    rows.push(...page.data);
    cursor = page.next_cursor;
    more.hidden = !cursor;
    replace(body, table(rows, columns, tableOpts));
  };
  more.addEventListener('click', () => load(false).catch(showError));
  return { el: h('div', {}, body, more), reload: () => load(true) };
}

/** A titled section. */
export const section = (title, ...children) => h('section', { 'aria-label': title }, h('h2', {}, title), ...children);

/** A button that runs an async action once at a time (disabled while it runs; errors shown by the caller's onError). */
export function actionButton(label, action, { kind = '', title, onError } = {}) {
  const b = h('button', { type: 'button', class: kind, title: title ?? null }, label);
  b.addEventListener('click', async () => {
    if (b.disabled) return;
    b.disabled = true;
    b.setAttribute('aria-busy', 'true');
    try { await action(b); } catch (err) { (onError ?? showError)(err); } finally { b.disabled = false; b.removeAttribute('aria-busy'); }
  });
  return b;
}

/** Announces a message to screen readers and shows it as a toast. */
export function announce(text, tone = 'info') {
  const region = document.getElementById('announcer');
  if (region) region.textContent = text;
  const toasts = document.getElementById('toasts');
  if (!toasts) return;
  const t = h('div', { class: `toast ${tone}`, role: tone === 'bad' ? 'alert' : 'status' }, text);
  toasts.append(t);
  setTimeout(() => t.remove(), tone === 'bad' ? 8000 : 4000);
}

export function showError(err) {
  const msg = err?.problem ? `${err.problem.title ?? 'Error'} (${err.problem.code}): ${err.problem.detail}` : String(err?.message ?? err);
  announce(msg, 'bad');
}

/**
 * A labelled form field. type 'textarea' or 'select' (options: [[value, label]]) or an input type.
 */
export function field(label, name, { type = 'text', value = '', required = false, options, placeholder, hint, rows } = {}) {
  const id = `f-${name}-${Math.random().toString(36).slice(2, 8)}`;
  let input;
  if (type === 'textarea') input = h('textarea', { id, name, required, placeholder: placeholder ?? null, rows: rows ?? 6 }, value);
  else if (type === 'select') input = h('select', { id, name, required }, options.map(([v, l]) => h('option', { value: v, selected: v === value }, l)));
  else input = h('input', { id, name, type, value, required, placeholder: placeholder ?? null, autocomplete: 'off' });
  return h('div', { class: 'field' }, h('label', { for: id }, label), input, hint ? h('small', {}, hint) : null);
}

/**
 * A virtualised list: only the rows in view (plus a margin) exist in the DOM, so a list of
 * 100,000 loaded rows costs what 40 do. Rows have a fixed height. `loadMore()` is called when the
 * view nears the end of what is loaded; it returns false once there is nothing more.
 */
export function virtualList({ rowHeight = 56, renderRow, loadMore, label, emptyText = 'Nothing here yet.' }) {
  const items = [];
  let exhausted = false;
  let loading = false;
  const spacer = h('div', { class: 'vl-spacer' });
  const inner = h('ul', { class: 'vl-rows', role: 'list', 'aria-label': label });
  const status = h('p', { class: 'vl-status', 'aria-live': 'polite' });
  const viewport = h('div', { class: 'vl', tabindex: '0', 'aria-label': label }, spacer, inner);
  const wrap = h('div', { class: 'vl-wrap' }, viewport, status);
  // What is on screen: rows are rebuilt only when the visible range or the data changed, so a
  // focused row (keyboard users) survives scrolling within the range.
  let shown = '';
  let version = 0;
  const render = () => {
    const top = viewport.scrollTop;
    const height = viewport.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / rowHeight) - 10);
    const last = Math.min(items.length, Math.ceil((top + height) / rowHeight) + 10);
    const key = `${first}:${last}:${items.length}:${version}:${exhausted}`;
    if (key !== shown) {
      shown = key;
      spacer.style.height = `${items.length * rowHeight}px`;
      inner.style.transform = `translateY(${first * rowHeight}px)`;
      inner.replaceChildren(...items.slice(first, last).map((it, i) =>
        h('li', { style: { height: `${rowHeight}px` }, 'aria-posinset': first + i + 1, 'aria-setsize': exhausted ? items.length : -1 }, renderRow(it))));
    }
    status.textContent = items.length === 0 ? (exhausted ? emptyText : 'Loading…') : `${items.length}${exhausted ? '' : '+'} shown`;
    if (!exhausted && !loading && last >= items.length - 20) more();
  };
  const more = async () => {
    loading = true;
    try {
      const got = await loadMore();
      if (!got || got.length === 0) exhausted = true; else items.push(...got);
      if (got && got.done) exhausted = true;
    } finally { loading = false; }
    render();
  };
  viewport.addEventListener('scroll', () => requestAnimationFrame(render), { passive: true });
  return {
    el: wrap,
    start: () => more(),
    /** Puts fresh rows at the top (live updates), skipping ones already there (by key). */
    prepend(rows, key) {
      const have = new Set(items.map(key));
      const fresh = rows.filter((r) => !have.has(key(r)));
      // Rows that changed (a thread with a new message) move to the top.
      const changed = new Set(rows.map(key));
      const kept = items.filter((r) => !changed.has(key(r)));
      items.length = 0;
      items.push(...rows, ...kept);
      version++;
      render();
      return fresh.length;
    },
    get size() { return items.length; },
  };
}

/** A horizontal bar with its numbers, for a used/limit budget. */
export function meter(used, limit, label) {
  const pct = limit > 0 ? Math.min(100, (used / limit) * 100) : 0;
  const tone = pct >= 90 ? 'bad' : pct >= 70 ? 'warn' : 'good';
  return h('div', { class: 'meter-row' },
    h('span', { class: 'meter-label' }, label),
    h('meter', { min: 0, max: limit || 1, value: used, 'aria-label': `${label}: ${used} of ${limit}`, class: tone }),
    h('span', { class: 'meter-num' }, `${used} / ${limit}`));
}

const SVG = 'http://www.w3.org/2000/svg';
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v != null) el.setAttribute(k, String(v));
  for (const c of children.flat(Infinity)) if (c != null) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/**
 * A horizontal bar chart: bars [{ label, value, tone? }]. Drawn as SVG with a text table beside it
 * for screen readers (the SVG is aria-hidden; the numbers are in the table).
 */
export function barChart(bars, { title, width = 560, unit = '' } = {}) {
  const max = Math.max(1, ...bars.map((b) => b.value));
  const rowH = 26;
  const labelW = 190;
  const chart = svg('svg', { viewBox: `0 0 ${width} ${bars.length * rowH + 4}`, class: 'chart', 'aria-hidden': 'true', role: 'img' },
    bars.map((b, i) => {
      const w = Math.max(1, ((width - labelW - 60) * b.value) / max);
      return svg('g', { transform: `translate(0,${i * rowH + 2})` },
        svg('text', { x: 0, y: 17, class: 'chart-label' }, b.label),
        svg('rect', { x: labelW, y: 3, width: w, height: rowH - 8, rx: 3, class: `bar ${b.tone ?? ''}` }),
        svg('text', { x: labelW + w + 6, y: 17, class: 'chart-value' }, `${b.value}${unit}`));
    }));
  // Wrapped: a table keeps its content width whatever its own width says, and would widen the page.
  const tableEl = h('div', { class: 'sr-only' }, h('table', {}, h('caption', {}, title ?? 'chart'),
    h('tbody', {}, bars.map((b) => h('tr', {}, h('th', { scope: 'row' }, b.label), h('td', {}, String(b.value)))))));
  return h('figure', { class: 'chart-fig' }, title ? h('figcaption', {}, title) : null, chart, tableEl);
}

/** A line chart of points [{ x: label, y: number }], with the same screen-reader table. */
export function lineChart(points, { title, width = 560, height = 160, yLabel = '', format = (v) => String(v) } = {}) {
  const max = Math.max(0.0001, ...points.map((p) => p.y));
  const pad = 30;
  const step = points.length > 1 ? (width - pad * 2) / (points.length - 1) : 0;
  const xy = points.map((p, i) => [pad + i * step, height - pad - ((height - pad * 2) * p.y) / max]);
  const chart = svg('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', 'aria-hidden': 'true' },
    svg('line', { x1: pad, y1: height - pad, x2: width - pad, y2: height - pad, class: 'axis' }),
    svg('text', { x: 2, y: pad - 8, class: 'chart-label' }, `${yLabel} max ${format(max)}`),
    xy.length > 1 ? svg('polyline', { points: xy.map((p) => p.join(',')).join(' '), class: 'line' }) : null,
    xy.map(([x, y]) => svg('circle', { cx: x, cy: y, r: 3, class: 'dot' })),
    points.length ? [svg('text', { x: pad, y: height - 8, class: 'chart-label' }, points[0].x), svg('text', { x: width - pad, y: height - 8, 'text-anchor': 'end', class: 'chart-label' }, points[points.length - 1].x)] : null);
  const tableEl = h('div', { class: 'sr-only' }, h('table', {}, h('caption', {}, title ?? 'chart'),
    h('tbody', {}, points.map((p) => h('tr', {}, h('th', { scope: 'row' }, p.x), h('td', {}, format(p.y)))))));
  return h('figure', { class: 'chart-fig' }, title ? h('figcaption', {}, title) : null, chart, tableEl);
}

/** A modal dialog (native <dialog>: focus trap, Escape closes). Resolves when closed. */
export function dialog(title, body, { actions = [] } = {}) {
  const d = h('dialog', { 'aria-label': title, class: 'dialog' },
    h('h2', {}, title), body,
    h('div', { class: 'dialog-actions' }, ...actions, h('button', { type: 'button', onclick: () => d.close() }, 'Close')));
  document.body.append(d);
  d.addEventListener('close', () => d.remove());
  d.showModal();
  return d;
}
