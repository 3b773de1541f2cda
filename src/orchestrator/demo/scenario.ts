import type { CampaignSpecInput } from '../spec.ts';
import { makeProspects, type Persona, type Prospect } from './personas.ts';

/**
 * The outreach campaign that `mailroom demo`, the campaign tests and the campaign benchmark run
 * against the simulated world: a realistic three-step sequence, leads across time zones (the
 * prospects' domains carry country TLDs), send windows in each recipient's time, a human to
 * escalate to, and a campaign clock that runs days in seconds.
 */
export interface ScenarioOptions {
  leads: number;
  /** Sender inbox addresses (ids work too). */
  senders: string[];
  dailyCap?: number;
  /** Where escalations go. */
  escalateTo: string;
  /** Campaign-clock seconds per real second. */
  scale: number;
  /** Campaign-clock start (default: the next Monday 05:00 UTC, so every run of a scenario sees the same week). */
  start?: Date;
  /** Prospects sharing a company domain (exercises "a reply from anyone at the same company"). */
  perCompany?: number;
  mix?: Partial<Record<Persona, number>>;
  delays?: [number, number];
  finalWaitBusinessDays?: number;
  name?: string;
  /** Override the campaign's agents (names registered with the server). */
  agents?: Partial<Record<'research' | 'personalize' | 'sequence' | 'respond', string>>;
  /** Skip the business-day calendar: every day, all day, no delays (throughput benchmarks). */
  anytime?: boolean;
}

/** The next Monday 05:00 UTC after `from`: in every zone of the scenario, the work week lies ahead. */
export function nextMonday(from = new Date()): Date {
  const d = new Date(Date.UTC(from.getUTCFullYear(), from.getUTCMonth(), from.getUTCDate(), 5));
  const add = (8 - d.getUTCDay()) % 7 || 7;
  return new Date(d.getTime() + add * 86_400_000);
}

export function scenarioProspects(o: Pick<ScenarioOptions, 'leads' | 'perCompany' | 'mix'>): Prospect[] {
  return makeProspects(o.leads, { perCompany: o.perCompany, mix: o.mix });
}

export function outreachCampaign(prospects: Prospect[], o: ScenarioOptions): CampaignSpecInput {
  const [d2, d3] = o.delays ?? [1, 1];
  return {
    name: o.name ?? `Pilot outreach (${prospects.length} leads)`,
    description: 'A two-week pilot offer to platform teams, with two follow-ups.',
    senders: o.senders.map((inbox) => ({ inbox, daily_cap: o.dailyCap ?? 1000 })),
    timezone: 'America/New_York',
    send_window: o.anytime ? { days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], start: '00:00', end: '24:00' } : { days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '09:00', end: '17:00' },
    steps: [
      {
        subject: '{{company|your team}} and email for AI agents',
        text: 'Hi {{first_name|there}},\n\n{{notes.hook}}\n\nWe run the mail layer for teams whose agents send and receive real email: inboxes on demand, replies as structured data, and limits shared by every agent. Would a two-week pilot at {{company|your company}} be worth 20 minutes next week?\n\nAda',
      },
      { delay_business_days: o.anytime ? 0 : d2, text: 'Hi {{first_name|there}},\n\nFollowing up in case this got buried: the pilot runs on your own infrastructure and takes about an hour to set up. Shall I send the guide?\n\nAda' },
      { delay_business_days: o.anytime ? 0 : d3, text: 'Hi {{first_name|there}},\n\nLast note from me. If agent email is not a priority for {{company|your team}} right now, no problem at all.\n\nAda' },
    ],
    stop: { final_wait_business_days: o.finalWaitBusinessDays ?? (o.anytime ? 0 : 1) },
    escalate_to: o.escalateTo,
    agents: o.agents,
    leads: prospects.map((p) => ({ email: p.address, first_name: p.first_name, last_name: p.last_name, company: p.company, crm: { persona_hint: 'unknown', source: 'demo' } })),
    clock: { scale: o.scale, start: (o.start ?? nextMonday()).toISOString() },
    labels: ['demo'],
  };
}

/** What each persona's run should end as: the outcome, and the class its reply was given. */
export const EXPECTED: Record<Persona, { outcome: string; replyClass?: string; status?: string }> = {
  interested: { outcome: 'replied', replyClass: 'interested' },
  not_interested: { outcome: 'replied', replyClass: 'not_interested' },
  question: { outcome: 'replied', replyClass: 'question' },
  wrong_person: { outcome: 'replied', replyClass: 'wrong_person' },
  unsubscribe: { outcome: 'unsubscribed', replyClass: 'unsubscribe' },
  out_of_office: { outcome: 'no_reply' },
  auto_reply: { outcome: 'no_reply' },
  hard_bounce: { outcome: 'bounced' },
  async_bounce: { outcome: 'bounced' },
  complaint: { outcome: 'complained' },
  colleague: { outcome: 'replied', replyClass: 'interested' },
  injection: { outcome: 'needs_human', status: 'needs_human' },
  silent: { outcome: 'no_reply' },
};
