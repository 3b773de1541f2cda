/**
 * The shapes of Mailroom's REST API (snake_case, as on the wire). Kept by hand in step with
 * src/api/schemas.ts of the server; the OpenAPI document at /openapi.json is the reference.
 */

export type Metadata = Record<string, unknown>;

export interface InjectionPolicy {
  action: 'allow' | 'flag' | 'quarantine' | 'needs_human';
  threshold: number;
}

export interface Inbox {
  id: string;
  address: string;
  username: string;
  domain: string;
  display_name: string | null;
  metadata: Metadata;
  client_id: string | null;
  marketing: boolean;
  injection_policy: InjectionPolicy;
  created_at: string;
  updated_at: string;
}

export interface CreateInboxParams {
  /** Local part; a readable unique one is picked when omitted. */
  username?: string;
  /** One of the server's MAILROOM_DOMAIN; the first by default. */
  domain?: string;
  display_name?: string | null;
  metadata?: Metadata;
  /** Idempotency: the same client_id returns the same inbox (200 instead of 201). */
  client_id?: string;
  marketing?: boolean;
  injection_policy?: Partial<InjectionPolicy> & Pick<InjectionPolicy, 'action'>;
}

export interface UpdateInboxParams {
  display_name?: string | null;
  metadata?: Metadata;
  marketing?: boolean;
  injection_policy?: Partial<InjectionPolicy> & Pick<InjectionPolicy, 'action'>;
}

export interface PageParams {
  /** Page size, 1-200 (default 50). */
  limit?: number;
  /** next_cursor of the previous page. */
  cursor?: string;
}

export interface EmailAddress {
  address: string;
  name: string;
}

export interface Attachment {
  id: string;
  filename: string | null;
  content_type: string;
  size: number;
  sha256: string;
  content_id: string | null;
  disposition: string | null;
}

export type Direction = 'inbound' | 'outbound';
export type Disposition = 'delivered' | 'flagged' | 'quarantined' | 'needs_human' | 'released';
export type MessageKind = 'human' | 'auto_reply' | 'out_of_office' | 'bounce' | 'complaint' | 'list' | 'transactional';

export interface MessageSummary {
  id: string;
  inbox_id: string;
  thread_id: string;
  direction: Direction;
  from: EmailAddress | null;
  to: EmailAddress[];
  cc: EmailAddress[];
  reply_to: EmailAddress[];
  subject: string | null;
  date: string | null;
  message_id: string | null;
  in_reply_to: string | null;
  references: string[];
  preview: string;
  attachments: Attachment[];
  size: number;
  received_at: string;
  parse_warnings: string[];
  kind: MessageKind | null;
  return_date: string | null;
  disposition: Disposition | null;
  /** Agent-to-agent mail (docs/a2a.md), without the payload in lists; null for ordinary mail. */
  a2a: A2aSummary | null;
}

/** The a2a part of a message, as lists show it (no payload). */
export interface A2aSummary {
  type: 'request' | 'response';
  intent: string;
  correlation_id: string;
  reply_expected_by: string | null;
  /** Responses: the Message-ID of the request answered. */
  in_reply_to: string | null;
  /**
   * Received mail: true only when DKIM aligned with the From domain passed and DMARC passed. Never act
   * on a payload whose message is not authenticated. null for mail this server sent.
   */
  authenticated: boolean | null;
  authenticated_domain: string | null;
  /** Why it is not authenticated: dkim_not_aligned_pass, dmarc_not_pass, no_auth_verdict. */
  signals: { kind: string; evidence: string }[];
}

export interface A2aInfo<P = unknown> extends A2aSummary {
  payload: P;
}

export type AuthResult = 'pass' | 'fail' | 'softfail' | 'neutral' | 'none' | 'temperror' | 'permerror' | 'policy';

export interface AuthVerdict {
  authserv_id: string;
  spf: { result: AuthResult; domain: string | null };
  dkim: { result: AuthResult; domain: string | null; selector: string | null; aligned: boolean }[];
  dmarc: { result: AuthResult; domain: string | null; policy: string | null; alignment: { spf: boolean; dkim: boolean } };
  arc: { result: AuthResult };
  signals: { kind: string; evidence: string }[];
}

export interface Injection {
  score: number;
  level: 'low' | 'medium' | 'high' | 'unknown';
  signals: { kind: string; evidence: string; location: 'subject' | 'text' | 'hidden_html' | 'attachment' | 'headers'; weight: number }[];
}

export interface Message extends MessageSummary {
  text: string | null;
  html: string | null;
  headers: { name: string; value: string }[];
  security: { auth?: AuthVerdict; injection?: Injection } | null;
  kind_evidence: string[] | null;
  extracted_text: string | null;
  a2a: A2aInfo | null;
}

export type DeliveryStatus = 'queued' | 'sending' | 'sent' | 'deferred' | 'bounced' | 'failed' | 'suppressed';

export interface Delivery {
  status: DeliveryStatus | 'partial';
  recipients: {
    address: string;
    kind: 'to' | 'cc' | 'bcc';
    status: DeliveryStatus;
    attempts: number;
    response: string | null;
    bounce_type: string | null;
    bounce_reason: string | null;
    transport: string | null;
    updated_at: string;
    sent_at: string | null;
  }[];
  trace_id: string;
  idempotency_key: string | null;
  labels: string[];
  metadata: Metadata;
  scheduled_at: string | null;
  expires_at: string;
}

/** A message as GET /v1/messages/{id} and the send routes return it: `delivery` is set for mail Mailroom sent. */
export interface OutboundMessage extends Message {
  delivery: Delivery | null;
}

export interface AgentView {
  message_id: string;
  view: 'agent';
  text: string;
}

export interface MessageListParams extends PageParams {
  thread_id?: string;
  /** Only messages received at or after this time. */
  since?: string | Date;
  direction?: Direction;
  /** Without it, held (quarantined, needs_human) messages are left out. */
  disposition?: Disposition;
  /** An address, or every address at a domain written "@example.com". */
  from?: string;
  /** Search: subject, sender and text contain every word (case-insensitive). */
  q?: string;
  /** Only a2a mail of this type: sent by this inbox, or received and authenticated. */
  a2a?: 'request' | 'response' | 'any';
  /** Only a2a mail with this correlation id: sent by this inbox, or received and authenticated. */
  a2a_correlation_id?: string;
}

export interface SendAttachment {
  filename: string;
  content_type?: string;
  /** The file: bytes, or a base64 string as the REST API takes it. */
  content: Uint8Array | ArrayBuffer | string;
}

export interface SendParams {
  /** One address or a list ("Name <a@b.c>" or "a@b.c"). Reply routes default it. */
  to?: string | string[];
  cc?: string | string[];
  /** In the envelope only; never written into the message. */
  bcc?: string | string[];
  subject?: string;
  text?: string;
  html?: string;
  attachments?: SendAttachment[];
  /** Custom X- headers only. */
  headers?: Record<string, string>;
  labels?: string[];
  metadata?: Metadata;
  /** Without an idempotency key: dedupe on inbox + recipients + campaign + intent. */
  dedupe?: { campaign: string; intent: string };
  /** Carried on every event of this message. */
  trace_id?: string;
  /** List-Unsubscribe with one-click; the default is the inbox setting. Takes exactly one recipient. */
  marketing?: boolean;
}

export type DraftStatus = 'pending' | 'approved' | 'sent' | 'failed' | 'rejected' | 'cancelled';

export interface DraftParams extends Omit<SendParams, 'dedupe'> {
  /** A message of this inbox the draft answers (its thread, "Re:" subject, to its sender unless `to` is given). */
  reply_to_message_id?: string;
  reply_all?: boolean;
  /** Once approved, send at this time (ISO 8601; default at once). */
  send_at?: string;
  /** Idempotent creation: the same client_id in this inbox returns the same draft. */
  client_id?: string;
}

export interface Draft {
  id: string;
  inbox_id: string;
  status: DraftStatus;
  reply_to_message_id: string | null;
  reply_all: boolean;
  /** What will be sent (attachments as base64). */
  content: Omit<SendParams, 'dedupe' | 'attachments'> & { to?: string[]; cc?: string[]; bcc?: string[]; attachments?: { filename: string; content_type?: string; content: string }[] };
  send_at: string | null;
  client_id: string | null;
  campaign_id: string | null;
  run_id: string | null;
  /** The campaign step (1-based) this draft is. */
  step: number | null;
  /** The outbound message, once sent. */
  message_id: string | null;
  reviewed_by: string | null;
  review_note: string | null;
  /** Why it failed, was cancelled, or went back to pending. */
  error: { code: string; message: string } | null;
  created_at: string;
  updated_at: string;
  approved_at: string | null;
  sent_at: string | null;
}

export interface DraftListParams extends PageParams {
  inbox_id?: string;
  status?: DraftStatus;
  campaign_id?: string;
}

export interface Thread {
  id: string;
  inbox_id: string;
  subject: string | null;
  message_count: number;
  first_message_at: string;
  last_message_at: string;
}

export interface ThreadWithMessages extends Thread {
  /** Oldest first. */
  messages: Message[];
}

export type Scope = 'inboxes:read' | 'inboxes:write' | 'messages:read' | 'messages:send' | 'drafts:write' | 'webhooks:write' | 'campaigns:read' | 'campaigns:write' | 'admin' | (string & {});

export interface Token {
  id: string;
  name: string | null;
  prefix: string;
  scopes: Scope[];
  inbox_ids: string[] | null;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

export interface CreatedToken extends Token {
  /** The secret. Returned only once. */
  token: string;
}

export interface CreateTokenParams {
  scopes: Scope[];
  /** Restrict the token to these inboxes. */
  inbox_ids?: string[];
  name?: string;
}

export interface DnsRecord {
  type: 'MX' | 'TXT';
  name: string;
  value: string;
  priority?: number;
  purpose: 'inbound' | 'spf' | 'dkim' | 'dmarc';
}

export interface Domain {
  id: string;
  name: string;
  dkim_selector: string;
  records: DnsRecord[];
  verification: Record<string, unknown>;
  verified: boolean;
  verified_at: string | null;
  paused_at: string | null;
  pause_reason: string | null;
  created_at: string;
}

export type SuppressionScope = 'global' | 'domain' | 'inbox';
export type SuppressionReason = 'hard_bounce' | 'complaint' | 'unsubscribe' | 'manual';

export interface Suppression {
  id: string;
  address: string;
  scope: SuppressionScope;
  scope_value: string | null;
  reason: SuppressionReason;
  detail: string | null;
  source_event_id: string | null;
  created_at: string;
}

export interface CreateSuppressionParams {
  address: string;
  scope?: SuppressionScope;
  /** The sending domain (scope domain) or inbox id (scope inbox). */
  scope_value?: string;
  reason?: SuppressionReason;
  detail?: string;
}

export interface SuppressionListParams extends PageParams {
  address?: string;
}

export type LimitScope = 'global' | 'inbox' | 'domain' | 'recipient_domain';

export interface Limit {
  id: string;
  scope: LimitScope;
  match: string;
  max: number;
  window_seconds: number;
  warmup: number[] | null;
  created_at: string;
  usage: { key: string; used: number; limit: number; remaining: number; resets_at: string | null }[];
}

export interface CreateLimitParams {
  scope: LimitScope;
  /** An inbox id or a domain; '*' (default) for each one separately. */
  match?: string;
  max: number;
  window?: 'minute' | 'hour' | 'day';
  window_seconds?: number;
  warmup?: number[];
}

export type EventType =
  | 'inbox.created' | 'inbox.deleted'
  | 'message.received' | 'message.quarantined' | 'message.released'
  | 'message.queued' | 'message.sent' | 'message.deferred' | 'message.bounced' | 'message.failed'
  | 'message.suppressed' | 'message.complained' | 'message.unsubscribed'
  | 'domain.created' | 'domain.verified' | 'domain.throttled' | 'domain.resumed'
  | 'webhook.disabled' | 'webhook.replayed'
  | (string & {});

export interface Event {
  id: string;
  /** Opaque position: pass as `after` (or let `events.stream` resume from it). */
  cursor: string;
  type: EventType;
  created_at: string;
  inbox_id: string | null;
  message_id: string | null;
  thread_id: string | null;
  trace_id: string | null;
  data: Record<string, unknown>;
}

export interface EventListParams {
  /** A cursor or an event id: only events after it. Absent: from the oldest retained event. */
  after?: string;
  types?: string | string[];
  inbox_id?: string;
  /** Page size, 1-500 (default 100). */
  limit?: number;
}

/** One page of the event log. `next_cursor` is where to resume, also when the page is empty. */
export interface EventPage {
  data: Event[];
  next_cursor: string | null;
}

export interface EventStreamParams {
  /** Start after this cursor or event id. Absent: only events that happen from now on. */
  after?: string;
  types?: string | string[];
  inbox_id?: string;
  /** Ends the iteration (without an error) when aborted. */
  signal?: AbortSignal;
}

export interface WaitForReplyParams {
  /** Only a message in this thread. */
  thread_id?: string;
  /** Only a message from this address, or from a domain written "@example.com". */
  from?: string;
  /** Only authenticated a2a mail of this type (`any`: either). */
  a2a?: 'request' | 'response' | 'any';
  /** Only authenticated a2a mail with this correlation id (the response to your request). */
  a2a_correlation_id?: string;
  /**
   * Return at once a matching message that arrived at or after this time. Default: the moment of
   * the call, as the server's clock has it.
   */
  since?: string | Date;
  /** Overall time to wait (default 60 000 ms); `null` comes back when it passes. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface Webhook {
  id: string;
  url: string;
  description: string | null;
  event_types: string[] | null;
  inbox_ids: string[] | null;
  enabled: boolean;
  disabled_reason: string | null;
  created_at: string;
  updated_at: string;
}

export interface CreatedWebhook extends Webhook {
  /** "whsec_…": the signing secret, returned only on creation and rotation. */
  secret: string;
}

export interface CreateWebhookParams {
  url: string;
  description?: string;
  /** null or absent: every event type. */
  event_types?: string[] | null;
  /** null or absent: events of every inbox (and events of no inbox). */
  inbox_ids?: string[] | null;
}

export interface UpdateWebhookParams {
  url?: string;
  description?: string | null;
  event_types?: string[] | null;
  inbox_ids?: string[] | null;
  enabled?: boolean;
}

export interface RotatedSecret {
  secret: string;
  /** Until then the previous secret keeps signing beside the new one (24 h). */
  previous_secret_expires_at: string;
}

export type WebhookDeliveryStatus = 'pending' | 'succeeded' | 'failed';

/** One event's delivery to an endpoint, over all its attempts. */
export interface WebhookDelivery {
  /** The webhook-id header: the same on every retry and replay of this event. */
  id: string;
  event_id: string;
  status: WebhookDeliveryStatus;
  attempts: number;
  /** HTTP status of the last attempt (null: no answer). */
  last_status: number | null;
  last_error: string | null;
  next_attempt_at: string | null;
  created_at: string;
  delivered_at: string | null;
}

export interface WebhookDeliveryListParams extends PageParams {
  status?: WebhookDeliveryStatus;
}

/** The JSON body of a webhook delivery. */
export interface WebhookPayload {
  type: EventType;
  timestamp: string;
  data: Event;
}

/** The problem document (RFC 9457) of every error response. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  code: string;
  detail: string;
  errors?: unknown;
}

// ---- Campaigns (src/orchestrator/spec.ts for the definition, src/api/routes/campaigns.ts for the rest) ----

export type Weekday = 'mon' | 'tue' | 'wed' | 'thu' | 'fri' | 'sat' | 'sun';

export type ReplyClass =
  | 'interested' | 'not_interested' | 'question' | 'out_of_office' | 'wrong_person' | 'unsubscribe' | 'auto_reply' | 'bounce';

/**
 * What the response agent may do with a reply. Defaults: interested, question, wrong_person →
 * escalate; not_interested, bounce → stop; unsubscribe → stop_and_suppress; out_of_office →
 * reschedule; auto_reply → ignore.
 */
export type ResponseAction = 'escalate' | 'reply' | 'draft' | 'archive' | 'reschedule' | 'stop' | 'stop_and_suppress' | 'ignore';

export interface CampaignSender {
  /** An inbox id (inb_…) or the inbox's address. */
  inbox: string;
  /** Most messages this inbox sends for the campaign per day (default 50, at most 100 000). */
  daily_cap?: number;
}

/** When messages may go out, in each recipient's time zone. */
export interface SendWindow {
  /** Default Monday to Friday. */
  days?: Weekday[];
  /** "HH:MM", 24-hour (default "09:00"). */
  start?: string;
  /** "HH:MM", 24-hour, after `start`; "24:00" is the end of the day (default "17:00"). */
  end?: string;
}

export interface CampaignStep {
  /** Required on the first step; on a later one, omitted means a reply in the same thread ("Re: …"). */
  subject?: string;
  /** The message text, a template: `{{first_name|there}}`, `{{company}}`, `{{fields.plan}}`, `{{notes.hook}}`. */
  text: string;
  html?: string;
  /** Business days (Mon–Fri, recipient time) after the previous step was sent (default 2); the first step ignores it. */
  delay_business_days?: number;
  /** Overrides the campaign's `approval` for this step. */
  approval?: 'none' | 'required';
}

export interface StopConditions {
  /** Default true. */
  on_reply?: boolean;
  /** An automatic reply that is not an out-of-office: keep going (default) or stop. */
  on_auto_reply?: 'continue' | 'stop';
  on_bounce?: boolean;
  on_complaint?: boolean;
  on_unsubscribe?: boolean;
  on_suppression?: boolean;
  /** A reply from anyone at the lead's company (same email domain) stops every lead there (default true). */
  on_company_reply?: boolean;
  /** Send at most this many steps (default: all of them). */
  max_steps?: number;
  /** After the last step, how long to wait for a reply before the run ends as no_reply (default 5). */
  final_wait_business_days?: number;
}

export interface CampaignLead {
  email: string;
  first_name?: string;
  last_name?: string;
  company?: string;
  title?: string;
  /** IANA zone; else inferred from the email domain's country; else the campaign's `timezone`. */
  timezone?: string;
  /** Template variables beyond the named ones (`{{fields.plan}}` or `{{plan}}`). */
  fields?: Record<string, string>;
  /** Free-form CRM data, handed to the research agent as is. */
  crm?: Record<string, unknown>;
}

/** Which implementation plays each role: "builtin" (the default) or a name registered with the server. */
/** Per role: "builtin" (default), "llm" (the model of `llm`), or a name the server registered. */
export interface CampaignAgents {
  research?: string;
  personalize?: string;
  sequence?: string;
  respond?: string;
}

/**
 * The model of the roles set to "llm", over the server's MAILROOM_LLM_* settings. No key is ever
 * sent: `api_key_env` names a variable of the server's environment (ending in _API_KEY) holding it.
 */
export interface CampaignLlm {
  provider?: 'openai-compatible' | 'anthropic';
  base_url?: string;
  model?: string;
  api_key_env?: string;
}

/**
 * A campaign as its author writes it: the body of `POST /v1/campaigns`, and the same schema as a
 * campaign YAML file. Written by hand after the server's src/orchestrator/spec.ts; the server
 * validates it and names every problem.
 */
export interface CampaignDefinition {
  name: string;
  description?: string;
  /** At least one; rotated, each with its daily cap. */
  senders: CampaignSender[];
  /** Default recipient time zone when neither the lead nor its domain says (default "UTC"). */
  timezone?: string;
  send_window?: SendWindow;
  /** 1 to 20. */
  steps: CampaignStep[];
  stop?: StopConditions;
  /** Per reply class, what the response agent may do (the defaults for the rest). */
  responses?: Partial<Record<ReplyClass, ResponseAction>>;
  /** Where escalations are emailed; required when some reply class escalates (the default for interested). */
  escalate_to?: string;
  /** The reply for the `reply` action (a template; `{{classification}}` is the reply's class). */
  reply_template?: string;
  agents?: CampaignAgents;
  llm?: CampaignLlm;
  /** List-Unsubscribe (RFC 8058) on every campaign message (default true). */
  marketing?: boolean;
  /** "required": every step is a draft a person approves (GET /v1/drafts) before it is sent (default "none"). */
  approval?: 'none' | 'required';
  /** How the agents coordinate: "hybrid" (default), "decentralized" or "centralized" (docs/patterns.md). */
  pattern?: 'centralized' | 'decentralized' | 'hybrid';
  /** The hybrid pattern's watcher: a stage not finished in `stage_seconds` (default 120) is re-queued; above `failure_rate` (default 0.5) of agent calls failing over the last 5 minutes, once `min_calls` (default 20) were made, the campaign is paused. */
  checkpoints?: { stage_seconds?: number; failure_rate?: number; min_calls?: number };
  /** At most 100 000; more with `campaigns.addLeads` / `importCsv`. */
  leads?: CampaignLead[];
  /**
   * Simulation: campaign time runs `scale` times faster than real time (`start`: where campaign time
   * begins, ISO 8601). For demos and tests of multi-day sequences; leave it out in production.
   */
  clock?: { scale?: number; start?: string };
  /** Extra labels on every message the campaign sends. */
  labels?: string[];
}

export type CampaignStatus = 'running' | 'paused' | 'completed' | 'cancelled';
export type RunStatus = 'pending' | 'active' | 'waiting' | 'done' | 'needs_human' | 'dead' | 'paused';
export type RunStage = 'research' | 'personalize' | 'sequence' | 'send' | 'await_reply' | 'finished';

export interface CampaignFunnel {
  leads: number;
  /** Runs by status. */
  status: Partial<Record<RunStatus, number>> & Record<string, number>;
  /** Live runs that have not sent their first message yet. */
  queued: number;
  /** Messages handed to the outbox per step (index 0: the first message). */
  sent_per_step: number[];
  /** Handed to the outbox, then cancelled there before they went (the address was suppressed meanwhile). */
  cancelled: number;
  /** Replies handled, by classification. */
  replied: Partial<Record<ReplyClass, number>> & Record<string, number>;
  bounced: number;
  complained: number;
  unsubscribed: number;
  suppressed: number;
  /** Ended without a reply or a bounce: no reply after the last step, a stop rule, the company replied elsewhere. */
  stopped: number;
  /** Dead-lettered runs (an agent kept failing): `runs.list({ status: 'dead' })`. */
  failed: number;
  needs_human: number;
  /** Ended runs by outcome. */
  outcomes: Record<string, number>;
}

export interface Campaign {
  id: string;
  name: string;
  status: CampaignStatus;
  senders: { inbox_id: string; address: string; daily_cap: number }[];
  /** Steps each lead gets at most (the steps, or stop.max_steps). */
  steps: number;
  /** `now`: campaign-clock time (differs from real time only when clock.scale > 1). */
  clock: { scale: number; now: string };
  client_id: string | null;
  created_at: string;
  updated_at: string;
  completed_at: string | null;
  funnel: CampaignFunnel;
  /** The definition as validated (defaults filled in), leads left out. */
  spec: Omit<CampaignDefinition, 'leads'> & Record<string, unknown>;
}

/** One lead's run through a campaign. */
export interface CampaignRun {
  id: string;
  campaign_id: string;
  lead: { id: string; email: string; timezone: string; timezone_source: string; data: CampaignLead & Record<string, unknown> };
  /** On every agent call, send, bounce and reply of this run (also on the events). */
  trace_id: string;
  status: RunStatus;
  stage: RunStage;
  steps_sent: number;
  inbox_id: string | null;
  thread_id: string | null;
  /** Campaign-clock time of the next send (or of the end of the reply wait). */
  send_at: string | null;
  out_of_office_until: string | null;
  /** How the run ended: no_reply, replied, bounced, suppressed, … */
  outcome: string | null;
  reply_class: ReplyClass | (string & {}) | null;
  detail: string | null;
  attempts: number;
  last_error: string | null;
  created_at: string;
  updated_at: string;
  finished_at: string | null;
}

export interface RunListParams extends PageParams {
  /** `dead`: the dead-letter queue. */
  status?: RunStatus;
}

/** One entry of a run's timeline: an agent call, handoff or decision, or an event of its trace. */
export interface TraceEntry {
  at: string;
  /** Campaign-clock time, for spans (null for events). */
  sim_at: string | null;
  kind: 'agent' | 'handoff' | 'decision' | 'send' | 'event' | (string & {});
  /** The span's name, or the event type (message.sent, message.bounced, …). */
  name: string;
  status: string;
  duration_ms: number;
  input?: unknown;
  /** A span's output; an event's data. */
  output?: unknown;
  error?: string | null;
  message_id?: string | null;
}

export interface RunTrace {
  run: CampaignRun;
  /** Oldest first. */
  timeline: TraceEntry[];
}

export interface LeadsAdded {
  added: number;
  /** Addresses listed twice, or already in the campaign. */
  skipped: { email: string; reason: string }[];
  /** CSV rows that were not imported, with why (row 1 is the header); empty for JSON. */
  problems: { row: number; field?: string; message: string }[];
}

/** One problem of an `invalid_request` for a campaign (MailroomApiError.errors). */
export interface CampaignProblem {
  /** Where in the campaign: "steps.0.subject" (JSON), "steps[1].delay_business_days" (YAML). */
  path: string;
  message: string;
  /** YAML bodies: the 1-based line and column, when known. */
  line?: number | null;
  column?: number | null;
}
