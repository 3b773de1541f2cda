import { z } from '@hono/zod-openapi';
import { SCOPES } from '../auth/scopes.ts';

/** Request and response shapes of the REST API (snake_case), also the source of /openapi.json. */

export const Problem = z
  .object({ type: z.string(), title: z.string(), status: z.number(), code: z.string(), detail: z.string(), errors: z.any().optional() })
  .openapi('Problem');

export const Metadata = z.record(z.string(), z.unknown());

export const Inbox = z
  .object({
    id: z.string(), address: z.string(), username: z.string(), domain: z.string(), display_name: z.string().nullable(),
    metadata: Metadata, client_id: z.string().nullable(), marketing: z.boolean(),
    injection_policy: z.object({ action: z.enum(['allow', 'flag', 'quarantine', 'needs_human']), threshold: z.number() }),
    created_at: z.string(), updated_at: z.string(),
    counts: z.object({ messages: z.number(), inbound: z.number(), outbound: z.number(), held: z.number(), threads: z.number() }).optional()
      .openapi({ description: 'With ?include=counts only.' }),
  })
  .openapi('Inbox');

// Header-unsafe characters are refused everywhere a value could end up in a header.
const noControl = (s: string) => !/[\r\n\u0000]/.test(s);

const InjectionPolicy = z
  .object({
    action: z.enum(['allow', 'flag', 'quarantine', 'needs_human']),
    threshold: z.number().min(0).max(1).default(0.7).openapi({ description: 'Injection score at or above which the action applies (default 0.7, "high").' }),
  })
  .strict()
  .openapi('InjectionPolicy', { description: 'What to do with received mail whose injection score reaches the threshold (default: quarantine at 0.7).' });

export const CreateInbox = z
  .object({
    username: z.string().min(1).max(64).optional().openapi({ description: 'Local part; a readable unique one is picked when omitted.' }),
    domain: z.string().max(253).optional().openapi({ description: 'One of MAILROOM_DOMAIN; the first by default.' }),
    display_name: z.string().max(200).refine(noControl, 'must not contain line breaks').nullable().optional(),
    metadata: Metadata.optional(),
    client_id: z.string().min(1).max(200).optional().openapi({ description: 'Idempotency: the same client_id returns the same inbox.' }),
    marketing: z.boolean().optional().openapi({ description: 'Put List-Unsubscribe (RFC 8058 one-click) on everything sent from this inbox.' }),
    injection_policy: InjectionPolicy.optional(),
  })
  .strict()
  .openapi('CreateInbox');

export const UpdateInbox = z
  .object({
    display_name: z.string().max(200).refine(noControl, 'must not contain line breaks').nullable().optional(),
    metadata: Metadata.optional(),
    marketing: z.boolean().optional(),
    injection_policy: InjectionPolicy.optional(),
  })
  .strict()
  .openapi('UpdateInbox');

const Address = z.object({ address: z.string(), name: z.string() });
export const Attachment = z
  .object({ id: z.string(), filename: z.string().nullable(), content_type: z.string(), size: z.number(), sha256: z.string(), content_id: z.string().nullable(), disposition: z.string().nullable() })
  .openapi('Attachment');

// Agent-to-agent email (docs/a2a.md). Lists carry the envelope without its payload.
const A2aSummary = z
  .object({
    type: z.enum(['request', 'response']),
    intent: z.string(),
    correlation_id: z.string(),
    reply_expected_by: z.string().nullable(),
    in_reply_to: z.string().nullable().openapi({ description: 'Responses: the Message-ID of the request answered.' }),
    authenticated: z.boolean().nullable().openapi({
      description: 'Received mail: true only when a DKIM signature aligned with the From domain passed and DMARC passed; a message failing either is never matched by the a2a filters. null for mail Mailroom sent.',
    }),
    authenticated_domain: z.string().nullable(),
    signals: z.array(z.object({ kind: z.string(), evidence: z.string() })).openapi({ description: 'Why it is not authenticated (dkim_not_aligned_pass, dmarc_not_pass, no_auth_verdict).' }),
  })
  .openapi('A2aSummary', { description: 'The a2a part of the message without its payload; null for ordinary mail.' });
export const A2aInfo = A2aSummary.extend({ payload: z.unknown().openapi({ description: 'Any JSON value (at most 256 KiB serialised).' }) })
  .openapi('A2aInfo', { description: 'The a2a part of the message (docs/a2a.md) with the trust Mailroom decided at receipt; null for ordinary mail.' });

const summaryShape = {
  id: z.string(), inbox_id: z.string(), thread_id: z.string(), direction: z.enum(['inbound', 'outbound']),
  from: Address.nullable(), to: z.array(Address), cc: z.array(Address), reply_to: z.array(Address),
  subject: z.string().nullable(), date: z.string().nullable(), message_id: z.string().nullable(), in_reply_to: z.string().nullable(),
  references: z.array(z.string()), preview: z.string(), attachments: z.array(Attachment), size: z.number(), received_at: z.string(),
  parse_warnings: z.array(z.string()),
  kind: z.enum(['human', 'auto_reply', 'out_of_office', 'bounce', 'complaint', 'list', 'transactional']).nullable()
    .openapi({ description: 'Received mail only: who or what wrote it (RFC 3834 headers, report structure, text).' }),
  return_date: z.string().nullable().openapi({ description: 'Out of office: the stated return day, YYYY-MM-DD.' }),
  disposition: z.enum(['delivered', 'flagged', 'quarantined', 'needs_human', 'released']).nullable()
    .openapi({ description: "Received mail: the inbox policy's decision. Quarantined and needs_human messages are left out of listings until released." }),
  a2a: A2aSummary.nullable(),
};
export const MessageSummary = z.object(summaryShape).openapi('MessageSummary');
const AuthResult = z.enum(['pass', 'fail', 'softfail', 'neutral', 'none', 'temperror', 'permerror', 'policy']);
export const AuthVerdict = z
  .object({
    authserv_id: z.string(),
    spf: z.object({ result: AuthResult, domain: z.string().nullable() }),
    dkim: z.array(z.object({ result: AuthResult, domain: z.string().nullable(), selector: z.string().nullable(), aligned: z.boolean() })),
    dmarc: z.object({ result: AuthResult, domain: z.string().nullable(), policy: z.string().nullable(), alignment: z.object({ spf: z.boolean(), dkim: z.boolean() }) }),
    arc: z.object({ result: AuthResult }),
    signals: z.array(z.object({ kind: z.string(), evidence: z.string() })),
  })
  .openapi('AuthVerdict');
export const Injection = z
  .object({
    score: z.number(), level: z.enum(['low', 'medium', 'high', 'unknown']),
    signals: z.array(z.object({ kind: z.string(), evidence: z.string(), location: z.enum(['subject', 'text', 'hidden_html', 'attachment', 'headers']), weight: z.number() })),
  })
  .openapi('Injection', { description: 'Prompt-injection risk, scored locally; level unknown when the scorer failed.' });
export const Security = z
  .object({ auth: AuthVerdict.optional(), injection: Injection.optional() })
  .openapi('Security', { description: 'Computed by Mailroom after receipt, never read from the message’s own Authentication-Results headers.' });

export const Message = z
  .object({
    ...summaryShape, text: z.string().nullable(), html: z.string().nullable(), headers: z.array(z.object({ name: z.string(), value: z.string() })),
    security: Security.nullable(),
    kind_evidence: z.array(z.string()).nullable(),
    extracted_text: z.string().nullable().openapi({ description: 'Received mail: the new part of a reply, without quoted history, signature and forwarded blocks.' }),
    a2a: A2aInfo.nullable(),
  })
  .openapi('Message');

export const Thread = z
  .object({ id: z.string(), inbox_id: z.string(), subject: z.string().nullable(), message_count: z.number(), first_message_at: z.string(), last_message_at: z.string() })
  .openapi('Thread');
export const ThreadWithMessages = Thread.extend({ messages: z.array(Message) }).openapi('ThreadWithMessages');

export const Token = z
  .object({
    id: z.string(), name: z.string().nullable(), prefix: z.string(), scopes: z.array(z.enum(SCOPES)), inbox_ids: z.array(z.string()).nullable(),
    created_at: z.string(), last_used_at: z.string().nullable(), revoked_at: z.string().nullable(),
  })
  .openapi('Token');
export const CreatedToken = Token.extend({ token: z.string().openapi({ description: 'The secret. Shown only in this response.' }) }).openapi('CreatedToken');
export const CreateToken = z
  .object({
    scopes: z.array(z.enum(SCOPES)).min(1),
    inbox_ids: z.array(z.string()).max(1000).optional().openapi({ description: 'Restrict the token to these inboxes.' }),
    name: z.string().max(200).optional(),
  })
  .strict()
  .openapi('CreateToken');

export const page = <T extends z.ZodTypeAny>(item: T) => z.object({ data: z.array(item), next_cursor: z.string().nullable() });

export const PageQuery = z.object({
  limit: z.coerce.number().int().min(1).max(200).optional().openapi({ description: 'Page size, 1-200 (default 50).' }),
  cursor: z.string().max(200).optional().openapi({ description: 'next_cursor of the previous page.' }),
});

const a2aQuery = {
  a2a: z.enum(['request', 'response', 'any']).optional()
    .openapi({ description: 'Only a2a mail of this type (any: either): sent by this inbox, or received and authenticated.' }),
  a2a_correlation_id: z.string().min(1).max(128).optional()
    .openapi({ description: 'Only a2a mail with this correlation id: sent by this inbox, or received and authenticated (a forged response never matches).' }),
};

export const MessageQuery = PageQuery.extend({
  thread_id: z.string().max(64).optional(),
  since: z.iso.datetime({ offset: true }).optional().openapi({ description: 'Only messages received at or after this time (ISO 8601).' }),
  direction: z.enum(['inbound', 'outbound']).optional(),
  disposition: z.enum(['delivered', 'flagged', 'quarantined', 'needs_human', 'released', 'any']).optional()
    .openapi({ description: 'Only messages with this disposition (any: every message, held ones included); without it, held (quarantined, needs_human) messages are left out.' }),
  from: z.string().min(1).max(320).optional().openapi({ description: 'Only messages from this address, or from any address at a domain written "@example.com".' }),
  q: z.string().min(1).max(200).optional().openapi({ description: 'Search: messages whose subject, sender or text contain these words (case-insensitive, every word must appear).' }),
  ...a2aQuery,
});

export const WaitQuery = z.object({
  thread_id: z.string().max(64).optional().openapi({ description: 'Only a message in this thread (the reply you are waiting for).' }),
  from: z.string().min(1).max(320).optional().openapi({ description: 'Only a message from this address, or from a domain written "@example.com".' }),
  since: z.iso.datetime({ offset: true }).optional().openapi({ description: 'Return at once a matching message that arrived at or after this time (default: now).' }),
  timeout: z.coerce.number().min(0).max(3600).optional().openapi({ description: 'Seconds to wait (default 30, capped at MAILROOM_WAIT_MAX_SECONDS).' }),
  ...a2aQuery,
});

export const EventSchema = z.object({
  id: z.string(),
  cursor: z.string().openapi({ description: 'Pass as `after` (or as SSE Last-Event-ID) to resume right after this event.' }),
  type: z.string(),
  created_at: z.string(),
  inbox_id: z.string().nullable(),
  message_id: z.string().nullable(),
  thread_id: z.string().nullable(),
  trace_id: z.string().nullable(),
  data: z.record(z.string(), z.unknown()),
}).openapi('Event');

export const EventQuery = z.object({
  after: z.string().max(100).optional().openapi({ description: 'A cursor or event id: only events after it. Absent: from the oldest retained event.' }),
  types: z.string().max(1000).optional().openapi({ description: 'Comma-separated event types, e.g. message.received,message.bounced.' }),
  inbox_id: z.string().max(64).optional(),
  limit: z.coerce.number().int().min(1).max(500).optional().openapi({ description: 'Page size, 1-500 (default 100).' }),
  last: z.coerce.number().int().min(1).max(500).optional().openapi({ description: 'The newest N events (1-500), oldest first, instead of reading on from a cursor; not with `after`.' }),
});

export const errorResponses = {
  400: { description: 'Invalid request', content: { 'application/problem+json': { schema: Problem } } },
  401: { description: 'Missing or invalid token', content: { 'application/problem+json': { schema: Problem } } },
  403: { description: 'The token lacks a scope', content: { 'application/problem+json': { schema: Problem } } },
  404: { description: 'Not found (or not visible to this token)', content: { 'application/problem+json': { schema: Problem } } },
} as const;

export const sendErrorResponses = {
  ...errorResponses,
  409: { description: 'The idempotency key was used with a different request', content: { 'application/problem+json': { schema: Problem } } },
  422: { description: 'Every recipient is suppressed', content: { 'application/problem+json': { schema: Problem } } },
} as const;

export const json = <T extends z.ZodTypeAny>(schema: T, description: string) => ({ description, content: { 'application/json': { schema } } });

// ---- Sending ----

const AddressList = z.union([z.string(), z.array(z.string()).max(100)]).transform((v) => (Array.isArray(v) ? v : [v]));

export const SendMessage = z
  .object({
    to: AddressList.optional().openapi({ description: 'One address or a list ("Name <a@b.c>" or "a@b.c").' }),
    cc: AddressList.optional(),
    bcc: AddressList.optional().openapi({ description: 'In the envelope only; never written into the message.' }),
    subject: z.string().max(998).optional(),
    text: z.string().optional(),
    html: z.string().optional(),
    attachments: z.array(z.object({
      filename: z.string().min(1).max(255),
      content_type: z.string().max(255).optional(),
      content: z.string().openapi({ description: 'The file, base64.' }),
    }).strict()).max(100).optional(),
    headers: z.record(z.string(), z.string()).optional().openapi({ description: 'Custom X- headers only.' }),
    labels: z.array(z.string().max(100)).max(50).optional(),
    metadata: Metadata.optional(),
    idempotency_key: z.string().min(1).max(255).optional().openapi({ description: 'Same as the Idempotency-Key header.' }),
    dedupe: z.object({ campaign: z.string().min(1).max(200), intent: z.string().min(1).max(200) }).strict().optional()
      .openapi({ description: 'Without a key: dedupe on inbox + recipients + campaign + intent.' }),
    trace_id: z.string().min(1).max(200).optional().openapi({ description: 'Carried on every event of this message.' }),
    marketing: z.boolean().optional().openapi({ description: 'Add List-Unsubscribe with one-click (RFC 8058); the default is the inbox setting. Takes exactly one recipient.' }),
  })
  .strict()
  .openapi('SendMessage');

export const Delivery = z
  .object({
    status: z.enum(['queued', 'sending', 'sent', 'deferred', 'bounced', 'failed', 'suppressed', 'partial']),
    recipients: z.array(z.object({
      address: z.string(), kind: z.enum(['to', 'cc', 'bcc']),
      status: z.enum(['queued', 'sending', 'sent', 'deferred', 'bounced', 'failed', 'suppressed']), attempts: z.number(),
      response: z.string().nullable(), bounce_type: z.string().nullable(), bounce_reason: z.string().nullable(), transport: z.string().nullable(),
      updated_at: z.string(), sent_at: z.string().nullable(),
    })),
    trace_id: z.string(), idempotency_key: z.string().nullable(), labels: z.array(z.string()), metadata: Metadata,
    scheduled_at: z.string().nullable().openapi({ description: 'When the next delivery attempt is due; null once every recipient is final.' }),
    expires_at: z.string(),
  })
  .openapi('Delivery');

export const OutboundMessage = Message.extend({ delivery: Delivery.nullable() }).openapi('OutboundMessage');

const DnsRecord = z.object({ type: z.enum(['MX', 'TXT']), name: z.string(), value: z.string(), priority: z.number().optional(), purpose: z.enum(['inbound', 'spf', 'dkim', 'dmarc']) });
export const Domain = z
  .object({
    id: z.string(), name: z.string(), dkim_selector: z.string(), records: z.array(DnsRecord), verification: z.record(z.string(), z.unknown()),
    verified: z.boolean(), verified_at: z.string().nullable(), paused_at: z.string().nullable(), pause_reason: z.string().nullable(), created_at: z.string(),
  })
  .openapi('Domain');
export const CreateDomain = z.object({ name: z.string().min(1).max(253) }).strict().openapi('CreateDomain');

export const Suppression = z
  .object({
    id: z.string(), address: z.string(), scope: z.enum(['global', 'domain', 'inbox']), scope_value: z.string().nullable(),
    reason: z.enum(['hard_bounce', 'complaint', 'unsubscribe', 'manual']), detail: z.string().nullable(), source_event_id: z.string().nullable(), created_at: z.string(),
  })
  .openapi('Suppression');
export const CreateSuppression = z
  .object({
    address: z.string().min(3).max(254),
    scope: z.enum(['global', 'domain', 'inbox']).default('global'),
    scope_value: z.string().max(253).optional().openapi({ description: 'The sending domain (scope domain) or inbox id (scope inbox).' }),
    reason: z.enum(['hard_bounce', 'complaint', 'unsubscribe', 'manual']).default('manual'),
    detail: z.string().max(500).optional(),
  })
  .strict()
  .openapi('CreateSuppression');

export const Limit = z
  .object({
    id: z.string(), scope: z.enum(['global', 'inbox', 'domain', 'recipient_domain']), match: z.string(), max: z.number(), window_seconds: z.number(),
    warmup: z.array(z.number()).nullable(), created_at: z.string(),
    usage: z.array(z.object({ key: z.string(), used: z.number(), limit: z.number(), remaining: z.number(), resets_at: z.string().nullable() })),
  })
  .openapi('Limit');
export const CreateLimit = z
  .object({
    scope: z.enum(['global', 'inbox', 'domain', 'recipient_domain']),
    match: z.string().min(1).max(253).optional().openapi({ description: "An inbox id or a domain; '*' (default) for each one separately." }),
    max: z.number().int().min(0).max(10_000_000),
    window: z.enum(['minute', 'hour', 'day']).optional(),
    window_seconds: z.number().int().min(1).max(30 * 86400).optional().openapi({ description: 'Instead of window: any length in seconds.' }),
    warmup: z.array(z.number().int().min(0)).min(1).max(365).optional().openapi({ description: 'Daily caps for a new sending domain: day 1, day 2, …' }),
  })
  .strict()
  .openapi('CreateLimit');
