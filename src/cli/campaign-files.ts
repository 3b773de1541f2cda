import { readFile } from 'node:fs/promises';
import { parseCampaignFile, parseLeadsCsv, type LeadRowProblem } from '../orchestrator/campaign-file.ts';
import type { LeadInput } from '../orchestrator/spec.ts';
import { parseMapping } from '../api/routes/campaigns.ts';

/**
 * The campaign commands' local side: files are read and validated here, so a mistake is reported
 * with its file line before anything reaches the server, and the server gets plain JSON.
 */
export async function readCampaignFile(file: string): Promise<Record<string, any>> {
  // CampaignFileError carries every problem with its line; main() prints it as is.
  return { ...parseCampaignFile(await readFile(file, 'utf8'), file) };
}

export async function readLeadsFile(file: string, map?: string): Promise<{ leads: LeadInput[]; problems: LeadRowProblem[] }> {
  return parseLeadsCsv(await readFile(file, 'utf8'), map ? parseMapping(map) : undefined);
}

const pct = (n: number, of: number) => (of ? `${((100 * n) / of).toFixed(1)} %` : '-');

/** A campaign and its funnel, as a person reads it. */
export function campaignText(c: any): string {
  const f = c.funnel;
  const replied = Object.entries(f.replied as Record<string, number>).sort((a, b) => b[1] - a[1]);
  const total = replied.reduce((s, [, n]) => s + n, 0);
  return [
    `${c.name}  (${c.id})  ${c.status.toUpperCase()}${c.clock.scale > 1 ? `   clock ×${c.clock.scale}: ${c.clock.now}` : ''}`,
    `senders: ${c.senders.map((s: any) => `${s.address} (cap ${s.daily_cap}/day)`).join(', ')}`,
    '',
    `leads            ${f.leads}`,
    `not yet sent     ${f.queued}`,
    ...f.sent_per_step.map((n: number, i: number) => `sent step ${String(i + 1).padEnd(6)} ${n}`),
    `replied          ${total}  (${pct(total, f.sent_per_step[0] ?? 0)} of first messages)`,
    ...replied.map(([k, n]) => `  ${k.padEnd(15)}${n}`),
    `bounced          ${f.bounced}`,
    ...(f.cancelled ? [`cancelled        ${f.cancelled}  (in the outbox when their address was suppressed)`] : []),
    `complained       ${f.complained}`,
    `unsubscribed     ${f.unsubscribed}`,
    `suppressed       ${f.suppressed}`,
    `stopped          ${f.stopped}`,
    `needs a human    ${f.needs_human}`,
    `failed (dlq)     ${f.failed}`,
    '',
    `runs by status: ${Object.entries(f.status).map(([k, n]) => `${k} ${n}`).join(', ')}`,
  ].join('\n');
}

/** A run's trace as a timeline: offset from the first entry, duration, what happened. */
export function traceText(t: any): string {
  const r = t.run;
  const start = t.timeline.length ? Date.parse(t.timeline[0].at) : 0;
  const rows = t.timeline.map((e: any) => {
    const offset = `+${((Date.parse(e.at) - start) / 1000).toFixed(3)}s`.padStart(10);
    const dur = e.duration_ms ? `${e.duration_ms} ms`.padStart(9) : ''.padStart(9);
    const sim = e.sim_at ? `  [campaign time ${e.sim_at}]` : '';
    const what = e.kind === 'event' ? `${e.name}${e.message_id ? ` ${e.message_id}` : ''}` : `${e.kind.padEnd(8)} ${e.name}${e.status === 'error' ? `  ERROR ${e.error}` : ''}`;
    return `${offset} ${dur}  ${what}${sim}`;
  });
  return [
    `run ${r.id}  lead ${r.lead.email} (${r.lead.timezone})  trace ${r.trace_id}`,
    `status ${r.status}, stage ${r.stage}, ${r.steps_sent} step(s) sent${r.outcome ? `, outcome ${r.outcome}` : ''}${r.reply_class ? ` (${r.reply_class})` : ''}`,
    ...(r.detail ? [`detail: ${r.detail}`] : []),
    '',
    ...rows,
  ].join('\n');
}
