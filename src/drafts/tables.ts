import type { ColumnType, Kysely, Selectable } from 'kysely';
import type { SendRequest } from '../outbound/outbox.ts';
import type { Database } from '../store/schema.ts';

/** Kysely's view of the drafts table (migration 010), kept beside the code that owns it. */
type Timestamp = ColumnType<Date, Date | string, Date | string>;
type Json<T> = ColumnType<T, string | T, string | T>;

export type DraftStatus = 'pending' | 'approved' | 'sent' | 'failed' | 'rejected' | 'cancelled';

/** The part of a send request a draft keeps (keys and trace are the draft's own). */
export type DraftRequest = Omit<SendRequest, 'idempotency_key' | 'dedupe'>;

export interface DraftTable {
  id: string;
  inbox_id: string;
  reply_to_message_id: string | null;
  reply_all: boolean;
  request: Json<DraftRequest>;
  status: DraftStatus;
  send_at: Timestamp | null;
  client_id: string | null;
  token_id: string | null;
  campaign_id: string | null;
  run_id: string | null;
  step: number | null;
  message_id: string | null;
  reviewed_by: string | null;
  review_note: string | null;
  error: Json<{ code: string; message: string }> | null;
  job_id: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
  approved_at: Timestamp | null;
  sent_at: Timestamp | null;
}
export type DraftRow = Selectable<DraftTable>;

type Db = Kysely<Database & { drafts: DraftTable }>;
export const draftsDb = (db: Kysely<Database>): Db => db as unknown as Db;
