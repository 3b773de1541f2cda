import { z } from 'zod';
import { PATTERNS } from './patterns.ts';

/**
 * What a campaign is, as its author writes it (a YAML or JSON file, the body of POST /v1/campaigns,
 * or a TypeScript object passed to `defineCampaign`). One schema for the three ways in, so a file
 * that validates here is exactly what the API accepts. Field names are snake_case like the rest of
 * the API. Human messages on every constraint: the loader reports them with the file line.
 */

export const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
export type Weekday = (typeof WEEKDAYS)[number];

const clockTime = z.string().regex(/^([01]\d|2[0-4]):[0-5]\d$/, 'a time of day as HH:MM (24-hour), e.g. "09:00"');

/** Is `tz` an IANA time zone this runtime knows? (Intl throws RangeError on an unknown one.) */
export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}
const timeZone = z.string().refine(isTimeZone, { message: 'an IANA time zone such as "Europe/Berlin" or "America/New_York"' });

export const SendWindow = z.object({
  days: z.array(z.enum(WEEKDAYS)).min(1, 'at least one day').default(['mon', 'tue', 'wed', 'thu', 'fri']),
  start: clockTime.default('09:00'),
  end: clockTime.default('17:00'),
}).strict().refine((w) => w.start < w.end, { message: 'the window must end after it starts (same day, recipient time)', path: ['end'] });
export type SendWindow = z.infer<typeof SendWindow>;

export const Sender = z.object({
  /** An inbox id (inb_…) or the inbox's address. */
  inbox: z.string().min(1, 'an inbox id or address'),
  /** Most messages this inbox sends for the campaign per day (the recipient-independent, campaign-local cap). */
  daily_cap: z.number().int().positive().max(100_000).default(50),
}).strict();

export const Step = z.object({
  /** First step: required. Later steps: omitted means a reply in the same thread ("Re: …"). */
  subject: z.string().min(1).max(998).optional(),
  text: z.string().min(1, 'the message text (a template: {{first_name|there}})').max(100_000),
  html: z.string().max(500_000).optional(),
  /** Business days (Mon–Fri, recipient time) after the previous step was sent; the first step ignores it. */
  delay_business_days: z.number().min(0).max(90).default(2),
  /** Overrides the campaign's `approval` for this step. */
  approval: z.enum(['none', 'required']).optional(),
}).strict();
export type Step = z.infer<typeof Step>;

export const REPLY_CLASSES = ['interested', 'not_interested', 'question', 'out_of_office', 'wrong_person', 'unsubscribe', 'auto_reply', 'bounce'] as const;
export type ReplyClass = (typeof REPLY_CLASSES)[number];

export const RESPONSE_ACTIONS = ['escalate', 'reply', 'draft', 'archive', 'reschedule', 'stop', 'stop_and_suppress', 'ignore'] as const;
export type ResponseActionType = (typeof RESPONSE_ACTIONS)[number];

/** What the response agent is allowed (and by default told) to do for each class of reply. */
export const DEFAULT_RESPONSES: Record<ReplyClass, ResponseActionType> = {
  interested: 'escalate',
  question: 'escalate',
  not_interested: 'stop',
  wrong_person: 'escalate',
  unsubscribe: 'stop_and_suppress',
  out_of_office: 'reschedule',
  auto_reply: 'ignore',
  bounce: 'stop',
};

export const StopConditions = z.object({
  on_reply: z.boolean().default(true),
  /** An automatic reply (not out of office): keep going, or stop the sequence. */
  on_auto_reply: z.enum(['continue', 'stop']).default('continue'),
  on_bounce: z.boolean().default(true),
  on_complaint: z.boolean().default(true),
  on_unsubscribe: z.boolean().default(true),
  on_suppression: z.boolean().default(true),
  /** A reply from anyone at the lead's company (same email domain) stops every lead there. */
  on_company_reply: z.boolean().default(true),
  /** Send at most this many steps (default: all of them). */
  max_steps: z.number().int().positive().max(50).optional(),
  /** After the last step, how long to wait for a reply before the run ends as no_reply. */
  final_wait_business_days: z.number().min(0).max(90).default(5),
}).strict();

export const Lead = z.object({
  email: z.string().min(3).max(254).regex(/^[^\s@<>",]+@[^\s@<>",]+\.[^\s@<>",]+$/, 'an email address such as ada@example.com'),
  first_name: z.string().max(200).optional(),
  last_name: z.string().max(200).optional(),
  company: z.string().max(200).optional(),
  title: z.string().max(200).optional(),
  /** IANA zone; else inferred from the email domain's country; else the campaign's timezone. */
  timezone: timeZone.optional(),
  /** Template variables beyond the named ones ({{fields.plan}} or {{plan}}). */
  fields: z.record(z.string(), z.string().max(10_000)).default({}),
  /** Free-form CRM data: handed to the research agent as is. */
  crm: z.record(z.string(), z.unknown()).default({}),
}).strict();
export type Lead = z.infer<typeof Lead>;
export type LeadInput = z.input<typeof Lead>;

/** Which implementation plays each role: "builtin", "llm" (a model: see `llm`) or a name registered with the server. */
export const AgentChoice = z.object({
  research: z.string().min(1).default('builtin'),
  personalize: z.string().min(1).default('builtin'),
  sequence: z.string().min(1).default('builtin'),
  respond: z.string().min(1).default('builtin'),
}).strict();

/** The model-backed roles' endpoints (orchestrator/llm/). */
export const LLM_PROVIDERS = ['openai-compatible', 'anthropic'] as const;
export type LlmProvider = (typeof LLM_PROVIDERS)[number];

/**
 * Names `llm.api_key_env` may take: a variable ending in _API_KEY that is not one of Mailroom's own.
 * A campaign author can direct the named key to the base_url they choose, so the name is held to
 * variables that are API keys by convention: never DATABASE_URL, an admin token or MAILROOM_LLM_API_KEY.
 */
export const LLM_KEY_ENV = /^(?!MAILROOM_)[A-Z][A-Z0-9_]*_API_KEY$/;

/**
 * The model the campaign's "llm" roles use, over the server's MAILROOM_LLM_* settings. The key is
 * never stored: `api_key_env` names a variable of the server's environment that holds it.
 */
export const LlmSpec = z.object({
  provider: z.enum(LLM_PROVIDERS).optional(),
  base_url: z.url({ protocol: /^https?$/, error: 'an http(s) URL, e.g. http://127.0.0.1:11434/v1' }).max(2000).optional(),
  model: z.string().min(1).max(200).optional(),
  api_key_env: z.string().regex(LLM_KEY_ENV, 'the name of a server environment variable ending in _API_KEY (not MAILROOM_…), e.g. OPENAI_API_KEY').optional(),
}).strict();
export type LlmSpec = z.infer<typeof LlmSpec>;

/**
 * Simulation: campaign time runs `scale` times faster than real time from the moment the campaign
 * is created (`start` sets where campaign time begins). For demos and tests of multi-day
 * sequences; production campaigns leave it out (scale 1, real time).
 */
export const ClockSpec = z.object({
  scale: z.number().min(1).max(1_000_000).default(1),
  start: z.iso.datetime({ offset: true }).optional(),
}).strict();

/** The fields of a campaign, without the cross-field checks (extend this, then apply checkCampaign). */
export const CampaignFields = z.object({
  name: z.string().min(1).max(200),
  description: z.string().max(2000).optional(),
  senders: z.array(Sender).min(1, 'at least one sender inbox'),
  /** Default recipient time zone when neither the lead nor its domain says. */
  timezone: timeZone.default('UTC'),
  send_window: SendWindow.prefault({}),
  steps: z.array(Step).min(1, 'at least one step').max(20),
  stop: StopConditions.prefault({}),
  /** Per reply class, what the response agent may do (DEFAULT_RESPONSES for the rest). */
  responses: z.partialRecord(z.enum(REPLY_CLASSES), z.enum(RESPONSE_ACTIONS)).default({}),
  /** Where escalations are emailed (a person, or an inbox a human watches). */
  escalate_to: z.string().max(254).regex(/^[^\s@<>",]+@[^\s@<>",]+$/, 'an email address').optional(),
  /** Reply text for the `reply` action (a template; the reply's classification is {{classification}}). */
  reply_template: z.string().max(100_000).optional(),
  agents: AgentChoice.prefault({}),
  /** The model of the roles set to "llm" (merged over the server's MAILROOM_LLM_*). */
  llm: LlmSpec.optional(),
  /** List-Unsubscribe (RFC 8058) on every campaign message. */
  marketing: z.boolean().default(true),
  /**
   * `required`: each step is written as a draft (GET /v1/drafts) and sent only once a person
   * approves it; the run waits, and still stops on a reply, bounce or suppression meanwhile.
   */
  approval: z.enum(['none', 'required']).default('none'),
  /** How the agents coordinate (patterns.ts): hybrid (default), decentralized or centralized. */
  pattern: z.enum(PATTERNS).default('hybrid'),
  /** The hybrid pattern's watcher (watcher.ts): when it steps in. */
  checkpoints: z.object({
    /** A stage started and not finished within this many seconds is re-queued for another worker. */
    stage_seconds: z.number().min(1).max(86_400).default(120),
    /** Above this share of failed agent calls (over the last 5 minutes) the campaign is paused. */
    failure_rate: z.number().gt(0).max(1).default(0.5),
    /** … counted only once this many calls were made in that time. */
    min_calls: z.number().int().min(1).max(100_000).default(20),
  }).strict().prefault({}),
  leads: z.array(Lead).max(100_000).default([]),
  clock: ClockSpec.optional(),
  /** Extra labels on every message the campaign sends. */
  labels: z.array(z.string().max(100)).max(20).default([]),
}).strict();

/** Checks that span fields: a first subject, max_steps within the steps, where escalations go, no lead twice. */
export function checkCampaign(c: z.infer<typeof CampaignFields>, ctx: z.RefinementCtx): void {
  if (!c.steps[0]?.subject) ctx.addIssue({ code: 'custom', path: ['steps', 0, 'subject'], message: 'the first step needs a subject' });
  if (c.stop.max_steps !== undefined && c.stop.max_steps > c.steps.length) {
    ctx.addIssue({ code: 'custom', path: ['stop', 'max_steps'], message: `max_steps (${c.stop.max_steps}) is more than the ${c.steps.length} steps defined` });
  }
  const escalates = Object.entries({ ...DEFAULT_RESPONSES, ...c.responses }).some(([, a]) => a === 'escalate');
  if (escalates && !c.escalate_to) ctx.addIssue({ code: 'custom', path: ['escalate_to'], message: 'some replies escalate (see responses): say where, e.g. escalate_to: owner@example.com' });
  if (Object.values(c.responses).includes('reply') && !c.reply_template) {
    ctx.addIssue({ code: 'custom', path: ['reply_template'], message: 'a response is "reply": give the reply_template to answer with' });
  }
  const seen = new Set<string>();
  c.leads.forEach((l, i) => {
    const key = l.email.toLowerCase();
    if (seen.has(key)) ctx.addIssue({ code: 'custom', path: ['leads', i, 'email'], message: `${l.email} is listed twice` });
    seen.add(key);
  });
}

export const CampaignSpec = CampaignFields.superRefine(checkCampaign);
export type CampaignSpec = z.infer<typeof CampaignSpec>;
export type CampaignSpecInput = z.input<typeof CampaignSpec>;

/** The TypeScript way in: a typed, validated campaign definition. */
export function defineCampaign(spec: CampaignSpecInput): CampaignSpec {
  return CampaignSpec.parse(spec);
}
