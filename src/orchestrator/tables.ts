import type { ColumnType, Generated, Kysely, Selectable } from 'kysely';
import type { Database } from '../store/schema.ts';

/** Kysely's view of the campaign tables (migration 006). Kept beside the orchestrator that owns them. */
type Timestamp = ColumnType<Date, Date | string, Date | string>;
type Json<T> = ColumnType<T, string | T, string | T>;

export type CampaignStatus = 'running' | 'paused' | 'completed' | 'cancelled';
export type RunStatus = 'pending' | 'active' | 'waiting' | 'done' | 'needs_human' | 'dead' | 'paused';
export type RunStage = 'research' | 'personalize' | 'sequence' | 'send' | 'await_reply' | 'finished';

export interface SenderRef { inbox_id: string; address: string; daily_cap: number }
export interface ClockRow { scale: number; originReal: number; originSim: number }

export interface CampaignTable {
  id: string;
  name: string;
  status: CampaignStatus;
  spec: Json<Record<string, unknown>>;
  senders: Json<SenderRef[]>;
  clock: Json<ClockRow>;
  client_id: string | null;
  token_id: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
  completed_at: Timestamp | null;
}

export interface LeadTable {
  id: string;
  campaign_id: string;
  email: string;
  email_key: string;
  domain: string;
  data: Json<Record<string, unknown>>;
  timezone: string;
  timezone_source: 'lead' | 'domain' | 'default';
  created_at: Timestamp;
}

export interface RunTable {
  id: string;
  campaign_id: string;
  lead_id: string;
  trace_id: string;
  status: RunStatus;
  stage: RunStage;
  step: number;
  inbox_id: string | null;
  thread_id: string | null;
  last_message_id: string | null;
  notes: Json<Record<string, unknown>> | null;
  draft: Json<Record<string, unknown>> | null;
  send_at: Timestamp | null;
  ooo_until: string | null;
  outcome: string | null;
  reply_class: string | null;
  detail: string | null;
  attempts: Generated<number>;
  last_error: string | null;
  version: Generated<number>;
  job_id: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
  finished_at: Timestamp | null;
}

export interface SendTable {
  run_id: string;
  step: number;
  campaign_id: string;
  inbox_id: string;
  day: string;
  status: 'reserved' | 'sent';
  message_id: string | null;
  idempotency_key: string;
  sim_at: Timestamp;
  created_at: Timestamp;
}

export interface SenderUsageTable { campaign_id: string; inbox_id: string; day: string; count: number }

export interface ReplyTable {
  run_id: string;
  message_id: string;
  campaign_id: string;
  sender: 'lead' | 'company' | 'other';
  classification: string | null;
  action: string;
  decision: Json<Record<string, unknown>>;
  created_at: Timestamp;
}

export interface SpanTable {
  id: string;
  run_id: string;
  trace_id: string;
  kind: 'agent' | 'handoff' | 'decision' | 'send' | 'reply';
  name: string;
  status: 'ok' | 'error';
  started_at: Timestamp;
  duration_ms: number;
  sim_at: Timestamp;
  input: Json<unknown> | null;
  output: Json<unknown> | null;
  error: string | null;
}

export interface OrchestratorDatabase extends Database {
  campaigns: CampaignTable;
  campaign_leads: LeadTable;
  campaign_runs: RunTable;
  campaign_sends: SendTable;
  campaign_sender_usage: SenderUsageTable;
  campaign_replies: ReplyTable;
  campaign_spans: SpanTable;
}

export type Db = Kysely<OrchestratorDatabase>;
export type CampaignRow = Selectable<CampaignTable>;
export type LeadRow = Selectable<LeadTable>;
export type RunRow = Selectable<RunTable>;
export type SpanRow = Selectable<SpanTable>;

/** The orchestrator's typed view of the one store (same connection, more tables). */
export const orchestratorDb = (db: Kysely<Database>): Db => db as unknown as Db;
