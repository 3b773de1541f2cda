import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig } from '../config/config.ts';
import { clockNow, type CampaignClock } from '../orchestrator/calendar.ts';
import { EXPECTED, outreachCampaign, scenarioProspects } from '../orchestrator/demo/scenario.ts';
import { startWorld } from '../orchestrator/demo/world.ts';
import { startMailroom } from '../server.ts';

/**
 * `mailroom demo`: Mailroom embedded in a temporary folder, plus a simulated prospects' mail
 * server on loopback that answers over real SMTP (people who reply, go out of office, bounce at
 * RCPT or later, complain, unsubscribe, answer through a colleague, try a prompt injection, or say
 * nothing), and a 50-lead, 3-step campaign on a clock that runs four hours a second. Live progress
 * while it runs; at the end, a summary of what happened and why.
 *
 * Everything goes through the public API, as an agent would: the demo creates the inboxes, the
 * campaign and a rate limit, and plays a second, careless orchestrator that sends every campaign
 * step again with the same (campaign, lead, step) key — which Mailroom refuses, so each prospect
 * still gets each step once (the summary counts both).
 */
export interface DemoOptions {
  json?: boolean;
  leads?: number;
  /** Campaign-clock seconds per real second (default 4 h per second). */
  scale?: number;
  out?: (s: string) => void;
}

export interface DemoSummary {
  seconds: number;
  campaign_id: string;
  sent_per_step: number[];
  replies: Record<string, number>;
  bounced: { at_rcpt: number; async_dsn: number };
  complained: number;
  unsubscribed: number;
  escalated: number;
  follow_ups_cancelled: Record<string, number>;
  duplicates_prevented: number;
  deferred_by_rate_limit: number;
  world: { received: number; duplicates_received: number };
  outcomes_as_expected: number;
  /** Leads whose run did not end as their persona should, with why. */
  unexpected: string[];
  leads: number;
}

const SCALE = 5 * 3600;
const LIMIT = { max: 20, seconds: 5 };

export async function demoCommand(o: DemoOptions = {}): Promise<number> {
  const write = o.out ?? ((s: string) => process.stdout.write(s));
  const summary = await runDemo({ ...o, out: o.json ? () => {} : write });
  if (o.json) write(`${JSON.stringify(summary, null, 2)}\n`);
  return summary.outcomes_as_expected === summary.leads && summary.world.duplicates_received === 0 ? 0 : 1;
}

export async function runDemo(o: DemoOptions = {}): Promise<DemoSummary> {
  const out = o.out ?? ((s: string) => process.stdout.write(s));
  const tty = process.stdout.isTTY && !o.out;
  const leadsWanted = o.leads ?? 50;
  const scale = o.scale ?? SCALE;
  const started = Date.now();
  const dataDir = await mkdtemp(path.join(tmpdir(), 'mailroom-demo-'));
  let clock: CampaignClock = { scale, originReal: Date.now(), originSim: Date.now() };
  const world = await startWorld({ mailroom: { host: '127.0.0.1', port: 0 }, simNow: () => clockNow(clock), realDelayForSim: (ms) => ms / scale, keepRaw: false });
  const { DATABASE_URL: _ignored, ...env } = process.env; // the demo is the embedded mode, always
  const config = loadConfig({
    ...env,
    MAILROOM_DATA_DIR: dataDir, MAILROOM_HTTP_PORT: '0', MAILROOM_SMTP_PORT: '0',
    MAILROOM_DOMAIN: 'demo.mailroom.localhost', MAILROOM_HOSTNAME: 'mx.demo.mailroom.localhost',
    MAILROOM_SMTP_RELAY_URL: world.relayUrl,
    // The prospects' domains are fictional: no DNS query may leave the machine (authentication
    // checks of their replies come out temperror, which is the honest answer here).
    MAILROOM_DNS_SERVERS: '127.0.0.1:1',
    // The world's 2 bounces in 50 could cross the 5 % auto-throttle early on, which pauses the
    // sending domain until an operator resumes it: a demo has no operator.
    MAILROOM_BOUNCE_RATE_THRESHOLD: '0.5',
    MAILROOM_LOG_LEVEL: process.env.MAILROOM_LOG_LEVEL ?? 'error',
  });
  const m = await startMailroom(config, { pgliteDir: null });
  world.setMailroom({ host: '127.0.0.1', port: m.smtpPort });
  const base = `http://127.0.0.1:${m.httpPort}`;
  const token = m.createdAdminToken!;
  const api = async (method: string, p: string, body?: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(base + p, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, body: res.status === 204 ? null : await res.json() as any };
  };
  try {
    out(`Mailroom demo: embedded Mailroom in ${dataDir}\n  API ${base}  token ${token}\n  simulated prospects' mail server at ${world.relayUrl} (Mailroom's relay)\n\n`);
    const sender = (await api('POST', '/v1/inboxes', { username: 'ada', display_name: 'Ada from Mailroom' })).body;
    const owner = (await api('POST', '/v1/inboxes', { username: 'sales-lead', display_name: 'Sales lead (escalations)' })).body;
    // A shared budget every agent's sends count against: 20 per 5 seconds for the whole server.
    await api('POST', '/v1/limits', { scope: 'global', max: LIMIT.max, window_seconds: LIMIT.seconds });
    const prospects = scenarioProspects({ leads: leadsWanted, perCompany: 1 });
    const spec = outreachCampaign(prospects, { leads: leadsWanted, senders: [sender.address], escalateTo: owner.address, scale, delays: [1, 1], finalWaitBusinessDays: 1 });
    const created = await api('POST', '/v1/campaigns', spec);
    if (created.status !== 201) throw new Error(`campaign refused: ${JSON.stringify(created.body)}`);
    const c = created.body;
    clock = { scale, originReal: Date.parse(c.created_at), originSim: Date.parse(spec.clock!.start!) };
    out(`Campaign "${c.name}": ${c.funnel.leads} leads, ${c.steps} steps, Mon–Fri 09:00–17:00 in each recipient's time zone,\ncampaign clock ×${scale} (one real second = ${scale / 3600} hours), starting ${spec.clock!.start}.\n\n`);

    // The careless second orchestrator: every campaign send, sent again under the same key.
    let cursor: string | null = null;
    let prevented = 0;
    const seenKeys = new Set<string>();
    const duplicateSends = async () => {
      for (;;) {
        const page: any = (await api('GET', `/v1/events?types=message.queued&limit=200${cursor ? `&after=${cursor}` : ''}`)).body;
        for (const e of page.data) {
          const key = e.data?.idempotency_key as string | undefined;
          if (!key?.startsWith('campaign:') || !key.includes(':step:') || seenKeys.has(key)) continue;
          seenKeys.add(key);
          const r = await api('POST', `/v1/inboxes/${e.inbox_id}/messages`, { to: e.data.recipients, subject: 'Quick follow-up', text: 'Sent twice by a second orchestrator.' }, { 'idempotency-key': key });
          if (r.status === 409 || (r.status < 300 && r.body?.id === e.message_id)) prevented++;
        }
        cursor = page.next_cursor ?? cursor;
        if (page.data.length < 200) return;
      }
    };

    let status = c;
    let lastLine = 0;
    for (;;) {
      await duplicateSends();
      status = (await api('GET', `/v1/campaigns/${c.id}`)).body;
      const f = status.funnel;
      const replies = Object.values(f.replied as Record<string, number>).reduce((a, b) => a + b, 0);
      const when = new Date(status.clock.now).toUTCString().slice(0, 22);
      const line = `${when} UTC │ sent ${f.sent_per_step.join('/')} │ replies ${replies} │ bounced ${f.bounced} │ escalated ${Object.values(f.outcomes as Record<string, number>).length ? (f.needs_human + (f.replied.interested ?? 0) + (f.replied.question ?? 0) + (f.replied.wrong_person ?? 0)) : 0} │ waiting ${f.status.waiting ?? 0} │ done ${(f.status.done ?? 0) + (f.status.needs_human ?? 0)}/${f.leads}`;
      if (tty) out(`\r${line.padEnd(110)}`);
      else if (Date.now() - lastLine > 5000) { out(`${line}\n`); lastLine = Date.now(); }
      if (status.status === 'completed') break;
      if (Date.now() - started > 180_000) throw new Error('the demo campaign did not finish within 3 minutes');
      await new Promise((r) => setTimeout(r, 400));
    }
    if (tty) out('\n');
    // What was handed to the outbox last may still be on its way to the world.
    const handed = status.funnel.sent_per_step.reduce((a: number, b: number) => a + b, 0);
    for (let i = 0; i < 100 && world.received.length + world.refused.length < handed; i++) await new Promise((r) => setTimeout(r, 100));
    await duplicateSends();

    const runs: any[] = [];
    for (let next: string | null = ''; next !== null;) {
      const page: any = (await api('GET', `/v1/campaigns/${c.id}/runs?limit=200${next ? `&cursor=${next}` : ''}`)).body;
      runs.push(...page.data);
      next = page.next_cursor;
    }
    const persona = new Map(prospects.map((p) => [p.address, p.persona]));
    let asExpected = 0;
    const cancelled: Record<string, number> = {};
    const unexpected: string[] = [];
    for (const r of runs) {
      const exp = EXPECTED[persona.get(r.lead.email)!];
      if (exp && r.outcome === exp.outcome && (!exp.replyClass || r.reply_class === exp.replyClass)) asExpected++;
      else unexpected.push(`${r.lead.email}: ${r.outcome}${r.reply_class ? ` (${r.reply_class})` : ''}, expected ${exp?.outcome}${exp?.replyClass ? ` (${exp.replyClass})` : ''} — ${r.detail ?? ''}`.slice(0, 300));
      if (r.steps_sent < c.steps) {
        const why = r.outcome === 'replied' ? `reply: ${r.reply_class}` : r.outcome;
        cancelled[why] = (cancelled[why] ?? 0) + 1;
      }
    }
    const deferredEvents = (await api('GET', '/v1/events?types=message.deferred&limit=500')).body.data.filter((e: any) => e.data?.reason === 'rate_limited');
    const deferred = new Set<string>(deferredEvents.map((e: any) => e.message_id));
    for (const r of runs.filter((x) => x.steps_sent > 0)) {
      for (const e of (await api('GET', `/v1/runs/${r.id}/trace`)).body.timeline) {
        if (e.kind === 'send' && e.output?.scheduled_at && Date.parse(e.output.scheduled_at) > Date.parse(e.at) + 500) deferred.add(e.output.message_id);
      }
    }
    const stepKeys = world.received.map((w) => `${w.to}#${w.mailroomHeaders['x-mailroom-step']}`);
    const f = status.funnel;
    const summary: DemoSummary = {
      seconds: Math.round((Date.now() - started) / 100) / 10,
      campaign_id: c.id,
      sent_per_step: f.sent_per_step,
      replies: f.replied,
      bounced: { at_rcpt: world.refused.length, async_dsn: (f.outcomes.bounced ?? 0) - world.refused.length },
      complained: f.complained,
      unsubscribed: f.unsubscribed,
      escalated: (await api('GET', `/v1/inboxes/${owner.id}/messages?limit=200`)).body.data.length,
      follow_ups_cancelled: cancelled,
      duplicates_prevented: prevented,
      deferred_by_rate_limit: deferred.size,
      world: { received: world.received.length, duplicates_received: stepKeys.length - new Set(stepKeys).size },
      outcomes_as_expected: asExpected,
      unexpected,
      leads: runs.length,
    };
    out(`\n${summaryTable(summary)}\n`);
    return summary;
  } finally {
    await world.stop();
    await m.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

export function summaryTable(s: DemoSummary): string {
  const rows: [string, string][] = [
    ['sent, per step', s.sent_per_step.map((n, i) => `step ${i + 1}: ${n}`).join('   ')],
    ['replies, by class', Object.entries(s.replies).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ') || 'none'],
    ['bounces', `${s.bounced.at_rcpt} refused at RCPT, ${s.bounced.async_dsn} by a later DSN`],
    ['complaints / unsubscribes', `${s.complained} / ${s.unsubscribed}`],
    ['escalated to a human', `${s.escalated} emails to the sales lead's inbox`],
    ['follow-ups cancelled, why', Object.entries(s.follow_ups_cancelled).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ') || 'none'],
    ['duplicates prevented', `${s.duplicates_prevented} (a second orchestrator re-sent every step with its key; the world got ${s.world.duplicates_received} duplicates)`],
    ['deferred by rate limits', `${s.deferred_by_rate_limit} sends waited for the shared budget (${LIMIT.max} per ${LIMIT.seconds} s)`],
    ['outcomes as expected', `${s.outcomes_as_expected} of ${s.leads} leads ended as their persona should${s.unexpected.length ? `; not: ${s.unexpected.join('; ')}` : ''}`],
    ['time', `${s.seconds} s`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join('\n');
}
