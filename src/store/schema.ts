import type { ColumnType, Generated, Insertable, Selectable } from 'kysely';

/**
 * Kysely's view of the tables created by `migrations/`. Keep the two in step: a column added in a
 * migration is added here in the same commit.
 */
type Timestamp = ColumnType<Date, Date | string, Date | string>;
type Json<T> = ColumnType<T, string | T, string | T>;

export interface AddressJson { address: string; name: string }
export interface HeaderJson { name: string; value: string }

export interface InboxTable {
  id: string;
  username: string;
  domain: string;
  address: string;
  display_name: string | null;
  metadata: Json<Record<string, unknown>>;
  client_id: string | null;
  marketing: Generated<boolean>;
  injection_action: Generated<'allow' | 'flag' | 'quarantine' | 'needs_human'>;
  injection_threshold: Generated<number>;
  created_at: Timestamp;
  updated_at: Timestamp;
  deleted_at: Timestamp | null;
}

export interface TokenTable {
  id: string;
  name: string | null;
  hash: string;
  prefix: string;
  scopes: string[];
  inbox_ids: string[] | null;
  created_at: Timestamp;
  last_used_at: Timestamp | null;
  revoked_at: Timestamp | null;
}

/** One accepted SMTP transaction: the envelope and a pointer to the raw bytes in the blob store. */
export interface ReceiptTable {
  id: string;
  mail_from: string;
  helo: string | null;
  remote_address: string | null;
  tls: boolean;
  raw_sha256: string;
  raw_size: number;
  trace_size: number;
  received_at: Timestamp;
  state: 'accepted' | 'ingested';
  ingested_at: Timestamp | null;
  /** Embedded: where the raw stays in the spool (`spool/raw/seg-N:offset:length`); null when it is a blob. Migration 008. */
  raw_ref: Generated<string | null>;
}

/** One recipient of a receipt. Its id is the id the message will have once parsed. */
export interface DeliveryTable {
  id: string;
  receipt_id: string;
  inbox_id: string;
  rcpt_to: string;
}

export interface MessageTable {
  id: string;
  inbox_id: string;
  thread_id: string;
  receipt_id: string | null;
  direction: 'inbound' | 'outbound';
  from_address: string | null;
  from_name: string | null;
  to: Json<AddressJson[]>;
  cc: Json<AddressJson[]>;
  reply_to: Json<AddressJson[]>;
  subject: string | null;
  date: Timestamp | null;
  message_id: string | null;
  in_reply_to: string | null;
  references: Json<string[]>;
  text: string | null;
  html: string | null;
  headers: Json<HeaderJson[]>;
  size: number;
  raw_sha256: string;
  received_at: Timestamp;
  parse_warnings: Json<string[]>;
  /** Inbound only: { auth } (intel/auth.ts); null for sent mail and for mail received before it existed. */
  security: Json<Record<string, unknown>> | null;
  /** Inbound only: intel/kind.ts. */
  kind: string | null;
  return_date: string | null;
  kind_evidence: Json<string[]> | null;
  disposition: 'delivered' | 'flagged' | 'quarantined' | 'needs_human' | 'released' | null;
  extracted_text: string | null;
  /** The a2a envelope and its trust (a2a/format.ts A2aInfo); null unless the message has an a2a part. Migration 009. */
  a2a: Json<Record<string, unknown>> | null;
  created_at: Generated<Timestamp>;
}

export interface AttachmentTable {
  id: string;
  message_id: string;
  position: number;
  filename: string | null;
  content_type: string;
  disposition: string | null;
  content_id: string | null;
  size: number;
  sha256: string;
}

export interface ThreadTable {
  id: string;
  inbox_id: string;
  subject: string | null;
  message_count: number;
  first_message_at: Timestamp;
  last_message_at: Timestamp;
  created_at: Timestamp;
}

/** Every Message-ID a thread has seen (own ids and references), per inbox: how replies find their thread. */
export interface ThreadRefTable {
  inbox_id: string;
  ref: string;
  thread_id: string;
}

export interface BlobTable {
  sha256: string;
  size: number;
  data: Buffer;
  created_at: Generated<Timestamp>;
}

export interface SettingTable {
  key: string;
  value: Json<unknown>;
}

export type RecipientStatus = 'queued' | 'sending' | 'sent' | 'deferred' | 'bounced' | 'failed' | 'suppressed';

/** One message Mailroom sends: its idempotency key, envelope and the signed raw bytes in the blob store. */
export interface OutboundTable {
  id: string;
  inbox_id: string;
  idempotency_key: string | null;
  request_hash: string;
  key_expires_at: Timestamp;
  envelope_from: string;
  raw_sha256: string;
  raw_size: number;
  trace_id: string;
  labels: Json<string[]>;
  metadata: Json<Record<string, unknown>>;
  attempts: Generated<number>;
  created_at: Timestamp;
  expires_at: Timestamp;
  next_attempt_at: Timestamp | null;
  job_id: string | null;
}

export interface OutboundRecipientTable {
  id: string;
  message_id: string;
  kind: 'to' | 'cc' | 'bcc';
  address: string;
  domain: string;
  status: RecipientStatus;
  attempts: Generated<number>;
  response: string | null;
  bounce_type: 'hard' | 'soft' | null;
  bounce_reason: string | null;
  transport: string | null;
  next_attempt_at: Timestamp | null;
  updated_at: Timestamp;
  sent_at: Timestamp | null;
}

export interface DomainTable {
  id: string;
  name: string;
  dkim_selector: string;
  dkim_private_key: string;
  dkim_public_key: string;
  verification: Json<Record<string, unknown>>;
  verified_at: Timestamp | null;
  paused_at: Timestamp | null;
  pause_reason: string | null;
  created_at: Timestamp;
}

export interface SuppressionTable {
  id: string;
  scope: 'global' | 'domain' | 'inbox';
  scope_value: string;
  address: string;
  reason: 'hard_bounce' | 'complaint' | 'unsubscribe' | 'manual';
  detail: string | null;
  source_event_id: string | null;
  created_at: Timestamp;
}

export interface EventTable {
  id: string;
  type: string;
  created_at: Timestamp;
  inbox_id: string | null;
  message_id: string | null;
  thread_id: string | null;
  trace_id: string | null;
  data: Json<Record<string, unknown>>;
  /** Position in the log (see migration 005): the writing transaction's id, then a sequence. */
  tx: Generated<string>;
  seq: Generated<string>;
}

export interface WebhookTable {
  id: string;
  url: string;
  description: string | null;
  event_types: Json<string[]> | null;
  inbox_ids: Json<string[]> | null;
  secret: string;
  previous_secret: string | null;
  previous_secret_expires_at: Timestamp | null;
  enabled: boolean;
  disabled_reason: string | null;
  cursor: string;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface WebhookDeliveryTable {
  id: string;
  webhook_id: string;
  event_id: string;
  event_cursor: string;
  status: 'pending' | 'succeeded' | 'failed';
  attempts: number;
  next_attempt_at: Timestamp | null;
  last_attempt_at: Timestamp | null;
  last_status: number | null;
  last_error: string | null;
  created_at: Timestamp;
  delivered_at: Timestamp | null;
}

export interface WebhookAttemptTable {
  delivery_id: string;
  at: Timestamp;
  status: number | null;
  error: string | null;
  duration_ms: number;
}

export interface RatePolicyTable {
  id: string;
  scope: 'global' | 'inbox' | 'domain' | 'recipient_domain';
  match: string;
  max: number;
  window_seconds: number;
  warmup: Json<number[]> | null;
  created_at: Timestamp;
}

export interface RateUsageTable {
  policy_id: string;
  key: string;
  at: Timestamp;
  message_id: string;
}

export interface SigninLinkTable {
  id: string;
  hash: string;
  created_at: Timestamp;
  expires_at: Timestamp;
  used_at: Timestamp | null;
  token_id: string | null;
}

export interface Database {
  signin_links: SigninLinkTable;
  inboxes: InboxTable;
  tokens: TokenTable;
  receipts: ReceiptTable;
  deliveries: DeliveryTable;
  messages: MessageTable;
  attachments: AttachmentTable;
  threads: ThreadTable;
  thread_refs: ThreadRefTable;
  blobs: BlobTable;
  settings: SettingTable;
  outbound: OutboundTable;
  outbound_recipients: OutboundRecipientTable;
  domains: DomainTable;
  suppressions: SuppressionTable;
  events: EventTable;
  rate_policies: RatePolicyTable;
  rate_usage: RateUsageTable;
  webhooks: WebhookTable;
  webhook_deliveries: WebhookDeliveryTable;
  webhook_attempts: WebhookAttemptTable;
}

export type InboxRow = Selectable<InboxTable>;
export type TokenRow = Selectable<TokenTable>;
export type MessageRow = Selectable<MessageTable>;
export type NewMessage = Insertable<MessageTable>;
export type AttachmentRow = Selectable<AttachmentTable>;
export type OutboundRow = Selectable<OutboundTable>;
export type RecipientRow = Selectable<OutboundRecipientTable>;
export type ThreadRow = Selectable<ThreadTable>;
