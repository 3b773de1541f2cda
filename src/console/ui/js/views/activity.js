// Live activity: the event stream as it happens, newest first, with a type filter. The first
// screen is filled from the event log (GET /v1/events), then the shared stream adds to it.
import { h, replace, timeEl, badge, toneOf } from '../dom.js';

const MAX_ROWS = 500;

const tone = (type) => toneOf(type.split('.').pop());

function describe(e) {
  const d = e.data ?? {};
  const parts = [];
  if (d.from) parts.push(`from ${d.from}`);
  if (d.to) parts.push(`to ${Array.isArray(d.to) ? d.to.join(', ') : d.to}`);
  if (d.recipient) parts.push(`to ${d.recipient}`);
  if (d.subject) parts.push(`“${d.subject}”`);
  if (d.reason) parts.push(String(d.reason));
  if (d.bounce_type) parts.push(`${d.bounce_type} bounce`);
  return parts.join(' · ');
}

function link(e) {
  if (e.thread_id) return h('a', { href: `#/threads/${encodeURIComponent(e.thread_id)}` }, 'open thread');
  if (e.data?.run_id) return h('a', { href: `#/runs/${encodeURIComponent(e.data.run_id)}` }, 'open run');
  return null;
}

export async function activityView(ctx) {
  const { api, root } = ctx;
  const filter = h('input', { id: 'activity-filter', type: 'search', placeholder: 'message.received, campaign…', 'aria-describedby': 'activity-help' });
  const list = h('div', { class: 'panel', role: 'log', 'aria-live': 'polite', 'aria-relevant': 'additions', 'aria-label': 'Events' });
  const events = [];
  const draw = () => {
    const f = filter.value.trim().toLowerCase();
    const shown = events.filter((e) => !f || e.type.includes(f) || JSON.stringify(e.data ?? {}).toLowerCase().includes(f)).slice(0, 200);
    replace(list, shown.length ? shown.map((e) => h('div', { class: 'activity-item', dataset: { type: e.type } },
      timeEl(e.created_at), h('span', {}, badge(e.type, tone(e.type))), h('span', {}, describe(e), ' ', link(e)))) : h('p', { class: 'empty' }, 'No events yet.'));
  };
  filter.addEventListener('input', draw);
  replace(root, h('h1', {}, 'Live activity'),
    h('div', { class: 'field' }, h('label', { for: 'activity-filter' }, 'Filter'), filter, h('small', { id: 'activity-help' }, 'Event type or any text in the event. New events appear at the top as they happen.')),
    list);
  // The newest events of the log (however long it is), then the live stream on top.
  const recent = await api.get('/v1/events?last=200');
  events.push(...recent.data.reverse());
  draw();
  ctx.cleanup(ctx.live.on((e) => {
    if (events.some((x) => x.id === e.id)) return;
    events.unshift(e);
    events.length = Math.min(events.length, MAX_ROWS);
    draw();
  }));
}
