// One run (a lead of a campaign): its state, and its trace timeline — agent calls, handoffs,
// decisions, sends, bounces and replies on one time axis, each with its duration, in the order
// the API gives them (oldest first). A row opens to show its input, output or error.
import { h, replace, timeEl, badge, toneOf, fmtMs, actionButton, announce } from '../dom.js';

const enc = encodeURIComponent;

/**
 * What colour a trace entry's bar takes (the .tl-bar classes): sends and delivery, bounces and
 * failures, replies, handoffs; agent calls and decisions keep the default.
 */
export function barClass(e) {
  if (e.kind === 'send') return 'send';
  if (e.kind === 'handoff') return 'handoff';
  if (e.kind === 'decision') return 'decision';
  if (e.kind === 'event') {
    if (/bounced|failed|complained|suppressed|run\.dead/.test(e.name)) return 'bounce';
    if (/reply|received|unsubscribed/.test(e.name)) return 'reply';
    if (/^message\.(queued|sent|deferred)$/.test(e.name)) return 'send';
    return 'event';
  }
  return 'agent';
}

const KIND_LABEL = { agent: 'agent', handoff: 'handoff', decision: 'decision', send: 'send', event: 'event' };

/** The JSON shown when a row is opened (input, output, error), or null when there is nothing. */
function entryDetail(e) {
  const parts = [];
  if (e.error) parts.push(h('p', { class: 'error' }, e.error));
  if (e.sim_at) parts.push(h('p', {}, h('small', {}, 'Campaign clock: ', timeEl(e.sim_at))));
  if (e.message_id) parts.push(h('p', {}, h('small', {}, `Message ${e.message_id}`)));
  if (e.input !== undefined) parts.push(h('h3', {}, 'Input'), h('pre', { class: 'text' }, JSON.stringify(e.input, null, 2)));
  if (e.output !== undefined) parts.push(h('h3', {}, 'Output'), h('pre', { class: 'text' }, JSON.stringify(e.output, null, 2)));
  return parts.length ? parts : null;
}

/** The axis: times as offsets from the first entry; an entry ends at `at + duration_ms`. */
function axisOf(timeline) {
  const starts = timeline.map((e) => Date.parse(e.at));
  const t0 = Math.min(...starts);
  const t1 = Math.max(...timeline.map((e, i) => starts[i] + e.duration_ms));
  return { t0, span: Math.max(1, t1 - t0), starts };
}

const pct = (x) => `${Math.min(100, Math.max(0, x * 100)).toFixed(3)}%`;

function ticksRow({ span }) {
  const ticks = [0, 0.25, 0.5, 0.75, 1];
  return h('li', { class: 'tl-row tl-axis', 'aria-hidden': 'true' },
    h('span', { class: 'tl-label' }, 'time since the first entry'),
    h('div', { class: 'tl-ticks' }, ticks.map((t) => h('span', { class: 'tl-tick', style: { left: pct(t) } }, fmtMs(t * span)))));
}

/** One row: label (kind, name, status, offset and duration), its bar on the shared axis, and its detail. */
function traceRow(e, i, axis) {
  const offset = axis.starts[i] - axis.t0;
  const detail = entryDetail(e);
  const detailEl = detail ? h('div', { class: 'tl-detail', id: `tl-detail-${i}`, hidden: true }, detail) : null;
  const nameText = `${e.name}`;
  const name = detailEl
    ? h('button', { type: 'button', class: 'link tl-name', 'aria-expanded': 'false', 'aria-controls': detailEl.id,
      onclick: (ev) => { const open = detailEl.hidden; detailEl.hidden = !open; ev.currentTarget.setAttribute('aria-expanded', String(open)); } }, nameText)
    : h('span', { class: 'tl-name' }, nameText);
  const failed = e.status !== 'ok';
  return h('li', { class: `tl-row${failed ? ' failed' : ''}`, dataset: { kind: e.kind, name: e.name, index: String(i), status: e.status } },
    h('div', { class: 'tl-label' },
      badge(KIND_LABEL[e.kind] ?? e.kind, e.kind === 'event' ? 'muted' : 'info'), ' ', name,
      failed ? [' ', badge(e.status, toneOf(e.status === 'error' ? 'failed' : e.status))] : null,
      h('small', { class: 'tl-when' }, ` +${fmtMs(offset)}${e.duration_ms ? ` · took ${fmtMs(e.duration_ms)}` : ''}`)),
    h('div', { class: 'tl-track', title: `${e.at}${e.duration_ms ? `, ${fmtMs(e.duration_ms)}` : ''}` },
      h('span', { class: `tl-bar ${barClass(e)}`, style: { left: pct(offset / axis.span), width: pct(e.duration_ms / axis.span) } })),
    detailEl);
}

export function traceTimeline(timeline, label) {
  if (!timeline.length) return h('p', { class: 'empty' }, 'Nothing on this trace yet.');
  const axis = axisOf(timeline);
  return h('div', {},
    h('p', { class: 'counts' }, `${timeline.length} entries over ${fmtMs(axis.span)} (real time), from `, timeEl(timeline[0].at), '.'),
    h('ol', { class: 'timeline', 'aria-label': label }, ticksRow(axis), timeline.map((e, i) => traceRow(e, i, axis))));
}

function runFacts(ctx, run, campaign) {
  const dt = (k, v) => (v == null || v === '' ? null : [h('dt', {}, k), h('dd', {}, v)]);
  return h('dl', { class: 'kv panel' },
    dt('Lead', run.lead.email),
    dt('Status', badge(run.status.replace(/_/g, ' '), toneOf(run.status))),
    dt('Stage', run.stage.replace(/_/g, ' ')),
    dt('Steps sent', campaign ? `${run.steps_sent} of ${campaign.steps}` : String(run.steps_sent)),
    dt('Outcome', run.outcome ? run.outcome.replace(/_/g, ' ') : null),
    dt('Reply', run.reply_class ? badge(run.reply_class.replace(/_/g, ' '), 'info') : null),
    dt('Detail', run.detail),
    dt('Next', run.send_at && !run.finished_at ? [timeEl(run.send_at), ' (campaign clock)'] : null),
    dt('Out of office until', run.out_of_office_until),
    dt('Attempts', run.attempts ? String(run.attempts) : null),
    dt('Last error', run.last_error ? h('code', {}, run.last_error) : null),
    dt('Time zone', `${run.lead.timezone} (${run.lead.timezone_source})`),
    dt('Thread', run.thread_id && ctx.can('messages:read') ? h('a', { href: `#/threads/${enc(run.thread_id)}` }, 'Open the thread') : run.thread_id),
    dt('Trace id', h('code', {}, run.trace_id)),
    dt('Started', timeEl(run.created_at)),
    dt('Finished', run.finished_at ? timeEl(run.finished_at) : null));
}

export async function runView(ctx) {
  const { api, root, params: [runId] } = ctx;
  let campaign = null;
  const draw = async () => {
    const { run, timeline } = await api.get(`/v1/runs/${enc(runId)}/trace`);
    if (!campaign) campaign = await api.get(`/v1/campaigns/${enc(run.campaign_id)}`).catch(() => null);
    if (!ctx.alive()) return;
    const retry = run.status === 'dead' && ctx.can('campaigns:write')
      ? actionButton('Retry run', async () => {
        await api.post(`/v1/runs/${enc(run.id)}/retry`);
        announce(`Retrying from ${run.stage}.`, 'good');
        await draw();
      }, { kind: 'primary' })
      : null;
    // Keep open rows open across a live redraw.
    const open = new Set([...root.querySelectorAll('.tl-detail:not([hidden])')].map((d) => d.id));
    replace(root,
      h('div', { class: 'crumbs' }, h('a', { href: '#/campaigns' }, 'Campaigns'), ' / ',
        h('a', { href: `#/campaigns/${enc(run.campaign_id)}` }, campaign?.name ?? run.campaign_id), ' / ', run.lead.email),
      h('h1', {}, run.lead.email),
      retry ? h('div', { class: 'toolbar' }, retry) : null,
      runFacts(ctx, run, campaign),
      h('section', { 'aria-labelledby': 'trace-h' }, h('h2', { id: 'trace-h' }, 'Trace timeline'),
        traceTimeline(timeline, `Trace of ${run.lead.email}, oldest first`)));
    for (const id of open) {
      const d = root.querySelector(`#${CSS.escape(id)}`);
      if (d) { d.hidden = false; d.parentElement.querySelector('.tl-name')?.setAttribute('aria-expanded', 'true'); }
    }
    return run;
  };
  const run = await draw();
  // Live: events of this run's trace (its sends, bounces, replies, run.*) redraw it, debounced.
  let timer = null;
  ctx.cleanup(ctx.live.on((e) => {
    if (e.trace_id !== run.trace_id && e.data?.run_id !== runId) return;
    clearTimeout(timer);
    timer = setTimeout(() => ctx.alive() && draw().catch(() => {}), 400);
  }));
  ctx.cleanup(() => clearTimeout(timer));
}
