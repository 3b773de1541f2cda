import { z } from 'zod';
import { CampaignSpec, Lead, REPLY_CLASSES, RESPONSE_ACTIONS, SendWindow } from './spec.ts';

/**
 * The four agent roles of a campaign, each a typed function: input and output are zod schemas, and
 * the engine validates both sides of every call (an implementation that returns something else is
 * an agent failure: retried, then dead-lettered with the reason). Built-in implementations
 * (agents/) need no network and no model; a user registers their own under a name and picks it per
 * campaign (`agents: { respond: 'my-llm' }`).
 *
 * Inputs carry only what the role needs, already rendered safe: the response agent gets the agent
 * view of a reply (fenced, links neutralised, hidden text removed) and the verdicts, never raw HTML.
 */

/** A message of the lead's history or of the run's thread, as a role sees it. */
export const HistoryMessage = z.object({
  id: z.string(),
  direction: z.enum(['inbound', 'outbound']),
  from: z.string().nullable(),
  to: z.array(z.string()),
  subject: z.string().nullable(),
  /** ISO time the message was sent or received. */
  at: z.string(),
  /** The new text of the message (extracted reply for received mail), truncated. */
  text: z.string(),
});
export type HistoryMessage = z.infer<typeof HistoryMessage>;

export const HistoryThread = z.object({ thread_id: z.string(), subject: z.string().nullable(), messages: z.array(HistoryMessage) });
export type HistoryThread = z.infer<typeof HistoryThread>;

// ---- research(lead, history) → notes ----

export const ResearchInput = z.object({
  lead: Lead,
  /** Past threads in this Mailroom with the lead's address, then with anyone at its domain (newest first). */
  history: z.object({ with_address: z.array(HistoryThread), with_domain: z.array(HistoryThread) }),
  campaign: z.object({ id: z.string(), name: z.string(), description: z.string().optional() }),
});
export type ResearchInput = z.infer<typeof ResearchInput>;

export const ResearchNotes = z.object({
  /** One or two sentences the personalization agent can build on. */
  summary: z.string().max(4000),
  facts: z.array(z.string().max(1000)).max(50),
  /** Where each fact came from: "crm:industry", "thread:thr_…", "fetcher:<name>". */
  sources: z.array(z.string().max(500)).max(50),
  /** Values the templates may use as {{notes.<key>}}. */
  variables: z.record(z.string(), z.string().max(2000)).default({}),
});
export type ResearchNotes = z.infer<typeof ResearchNotes>;

// ---- personalize(lead, notes, step, thread) → draft ----

export const PersonalizeInput = z.object({
  lead: Lead,
  notes: ResearchNotes,
  step: z.object({ index: z.number().int().min(0), count: z.number().int().positive(), subject: z.string().optional(), text: z.string(), html: z.string().optional() }),
  /** The run's thread so far (oldest first); empty for the first step. */
  thread: z.array(HistoryMessage),
});
export type PersonalizeInput = z.infer<typeof PersonalizeInput>;

export const Draft = z.object({
  /** Omitted on a follow-up: the send is a reply in the thread ("Re: …"). */
  subject: z.string().min(1).max(998).optional(),
  text: z.string().min(1).max(100_000),
  html: z.string().max(500_000).optional(),
});
export type Draft = z.infer<typeof Draft>;

// ---- sequence(lead, history, policy, now) → send_at | stop(reason) ----

export const SequenceInput = z.object({
  lead: Lead,
  /** The lead's effective time zone (lead → domain's country → campaign default). */
  timezone: z.string(),
  history: z.object({
    /** Steps already sent, with the campaign-clock time each was handed to the outbox. */
    sent: z.array(z.object({ step: z.number().int(), at: z.string() })),
    /** An out-of-office reply's return date (YYYY-MM-DD), if one came. */
    out_of_office_until: z.string().nullable(),
  }),
  policy: z.object({
    next_step: z.number().int().min(0),
    step_count: z.number().int().positive(),
    max_steps: z.number().int().positive(),
    delay_business_days: z.number().min(0),
    send_window: SendWindow,
  }),
  /** Campaign-clock time now (ISO). */
  now: z.string(),
});
export type SequenceInput = z.infer<typeof SequenceInput>;

export const SequenceDecision = z.discriminatedUnion('action', [
  z.object({ action: z.literal('send'), send_at: z.iso.datetime({ offset: true }), reason: z.string().max(500).optional() }),
  z.object({ action: z.literal('stop'), reason: z.string().min(1).max(500) }),
]);
export type SequenceDecision = z.infer<typeof SequenceDecision>;

// ---- respond(reply, thread) → classification + action ----

export const RespondInput = z.object({
  lead: Lead,
  reply: z.object({
    message_id: z.string(),
    from: z.string().nullable(),
    /** Whether the sender is the lead, someone else at the lead's company, or someone else. */
    sender: z.enum(['lead', 'company', 'other']),
    subject: z.string().nullable(),
    /** The safe agent view (intel/agent-view.ts): verdicts first, the sender's words fenced. */
    agent_view: z.string(),
    /** The new part of the reply, without quotes and signature. */
    extracted_text: z.string(),
    kind: z.string().nullable(),
    return_date: z.string().nullable(),
    injection: z.object({ level: z.string(), score: z.number() }).nullable(),
    /** DMARC result of the sender's domain: pass, fail, none… */
    dmarc: z.string().nullable(),
  }),
  thread: z.array(HistoryMessage),
  /** The actions this campaign allows, per class (the engine refuses any other). */
  allowed: z.record(z.string(), z.enum(RESPONSE_ACTIONS)),
});
export type RespondInput = z.infer<typeof RespondInput>;

export const ResponseDecision = z.object({
  classification: z.enum(REPLY_CLASSES),
  confidence: z.number().min(0).max(1),
  /** One line for the trace and the escalation email. */
  summary: z.string().max(1000),
  /** out_of_office: the date (YYYY-MM-DD) the sender is back, if the reply says. */
  return_date: z.string().regex(/^\d{4}-\d{2}-\d{2}$/).nullable().default(null),
  /** wrong_person: who to talk to instead, if the reply names someone. */
  referral: z.object({ email: z.string().nullable(), name: z.string().nullable() }).nullable().default(null),
  action: z.enum(RESPONSE_ACTIONS),
  /** For reply/draft: the text to send (else the campaign's reply_template). */
  text: z.string().max(100_000).optional(),
});
export type ResponseDecision = z.infer<typeof ResponseDecision>;

// ---- the roles as interfaces ----

/** What every role call gets besides its input: where it stands and a way to give up early. */
export interface RoleContext {
  campaignId: string;
  runId: string;
  traceId: string;
  signal: AbortSignal;
  /** A model-backed agent reports each model call here; the engine puts them on the call's trace span. */
  recordUsage?(usage: ModelUsage): void;
}

/** One model call of an agent: what the trace shows about its cost and speed. */
export interface ModelUsage {
  provider: string;
  model: string;
  input_tokens: number | null;
  output_tokens: number | null;
  latency_ms: number;
  /** HTTP attempts the call took (a 429 or a timeout is retried). */
  attempts?: number;
  /** The prompt's file and version the call was made with ("respond.v1"). */
  prompt?: string;
  /** Set when the call failed (the agent then fails the role call). */
  error?: string;
}

export interface ResearchAgent { research(input: ResearchInput, ctx: RoleContext): Promise<ResearchNotes> }
export interface PersonalizeAgent { personalize(input: PersonalizeInput, ctx: RoleContext): Promise<Draft> }
export interface SequenceAgent { sequence(input: SequenceInput, ctx: RoleContext): Promise<SequenceDecision> }
export interface RespondAgent { respond(input: RespondInput, ctx: RoleContext): Promise<ResponseDecision> }

export interface AgentSet {
  research: ResearchAgent;
  personalize: PersonalizeAgent;
  sequence: SequenceAgent;
  respond: RespondAgent;
}
export type RoleName = keyof AgentSet;

/** Implementations a server offers besides "builtin", by role and name. */
export interface AgentRegistry {
  research?: Record<string, ResearchAgent>;
  personalize?: Record<string, PersonalizeAgent>;
  sequence?: Record<string, SequenceAgent>;
  respond?: Record<string, RespondAgent>;
}

/** The schemas of each role, for validating calls and for documentation. */
export const ROLE_SCHEMAS = {
  research: { input: ResearchInput, output: ResearchNotes },
  personalize: { input: PersonalizeInput, output: Draft },
  sequence: { input: SequenceInput, output: SequenceDecision },
  respond: { input: RespondInput, output: ResponseDecision },
} as const;

export type { CampaignSpec };
