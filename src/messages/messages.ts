import { sql, type ExpressionBuilder, type Kysely } from 'kysely';
import { canSeeInbox, type Principal } from '../auth/scopes.ts';
import type { A2aInfo } from '../a2a/format.ts';
import { MailroomError, notFound } from '../errors.ts';
import { appendEvents } from '../events/events.ts';
import { HELD } from '../intel/policy.ts';
import type { Inboxes } from '../inboxes/inboxes.ts';
import type { BlobStore } from '../store/blobs.ts';
import { clampLimit, decodeCursor, toPage, type Page, type PageRequest } from '../store/pagination.ts';
import type { AttachmentRow, Database, MessageRow, ThreadRow } from '../store/schema.ts';

/** Reading messages and threads: the domain functions behind the API, and all their SQL. */

export interface AttachmentView {
  id: string;
  filename: string | null;
  content_type: string;
  size: number;
  sha256: string;
  content_id: string | null;
  disposition: string | null;
}

export interface MessageSummary {
  id: string;
  inbox_id: string;
  thread_id: string;
  direction: 'inbound' | 'outbound';
  from: { address: string; name: string } | null;
  to: { address: string; name: string }[];
  cc: { address: string; name: string }[];
  reply_to: { address: string; name: string }[];
  subject: string | null;
  date: string | null;
  message_id: string | null;
  in_reply_to: string | null;
  references: string[];
  preview: string;
  attachments: AttachmentView[];
  size: number;
  received_at: string;
  parse_warnings: string[];
  /** Received mail: human, auto_reply, out_of_office, bounce, complaint, list or transactional; null for sent mail. */
  kind: 'human' | 'auto_reply' | 'out_of_office' | 'bounce' | 'complaint' | 'list' | 'transactional' | null;
  /** Out of office: when the sender says they are back (YYYY-MM-DD), if the text states it. */
  return_date: string | null;
  /** Received mail: what the inbox's policy decided; null for sent mail. */
  disposition: 'delivered' | 'flagged' | 'quarantined' | 'needs_human' | 'released' | null;
  /** Agent-to-agent mail (a2a/format.ts); lists leave the payload out. null for every other message. */
  a2a: Omit<A2aInfo, 'payload'> | A2aInfo | null;
}

export interface MessageView extends MessageSummary {
  text: string | null;
  html: string | null;
  headers: { name: string; value: string }[];
  /** Received mail: what Mailroom can tell about it (`auth` now); null for sent mail. */
  security: Record<string, unknown> | null;
  /** Why `kind` is what it is (headers and phrases that decided it). */
  kind_evidence: string[] | null;
  /** Received mail: the new part of a reply, without quoted history, signature and forwarded blocks. */
  extracted_text: string | null;
  a2a: A2aInfo | null;
}

export interface ThreadView {
  id: string;
  inbox_id: string;
  subject: string | null;
  message_count: number;
  first_message_at: string;
  last_message_at: string;
}

const toAttachmentView = (a: AttachmentRow): AttachmentView => ({
  id: a.id, filename: a.filename, content_type: a.content_type, size: a.size, sha256: a.sha256, content_id: a.content_id, disposition: a.disposition,
});

/** Not quarantined or waiting for a person: what listings and thread views show by default. */
const notHeld = (eb: ExpressionBuilder<Database, 'messages'>) => eb.or([eb('disposition', 'is', null), eb('disposition', 'not in', [...HELD])]);

/** The a2a summary a message.received event carries (as ingest writes it), without the payload. */
function a2aEventData(a2a: unknown): { a2a?: Pick<A2aInfo, 'type' | 'intent' | 'correlation_id' | 'authenticated'> } {
  const a = a2a as A2aInfo | null;
  return a ? { a2a: { type: a.type, intent: a.intent, correlation_id: a.correlation_id, authenticated: a.authenticated } } : {};
}

const preview = (text: string | null) => (text ?? '').replace(/\s+/g, ' ').trim().slice(0, 200);

function toSummary(m: MessageRow, attachments: AttachmentRow[]): MessageSummary {
  return {
    id: m.id,
    inbox_id: m.inbox_id,
    thread_id: m.thread_id,
    direction: m.direction,
    from: m.from_address !== null ? { address: m.from_address, name: m.from_name ?? '' } : null,
    to: m.to,
    cc: m.cc,
    reply_to: m.reply_to,
    subject: m.subject,
    date: m.date?.toISOString() ?? null,
    message_id: m.message_id,
    in_reply_to: m.in_reply_to,
    references: m.references,
    preview: preview(m.text),
    attachments: attachments.map(toAttachmentView),
    size: m.size,
    received_at: m.received_at.toISOString(),
    parse_warnings: m.parse_warnings,
    kind: (m.kind as MessageSummary['kind']) ?? null,
    return_date: m.return_date ?? null,
    disposition: m.disposition ?? null,
    a2a: (m.a2a as A2aInfo | null) ?? null,
  };
}

/** A stored message as the API shows it (the send API builds its answers with it from the rows it wrote). */
export const toView = (m: MessageRow, attachments: AttachmentRow[]): MessageView => ({
  ...toSummary(m, attachments),
  text: m.text,
  html: m.html,
  headers: m.headers,
  security: (m.security as Record<string, unknown> | null) ?? null,
  kind_evidence: (m.kind_evidence as string[] | null) ?? null,
  extracted_text: m.extracted_text ?? null,
  a2a: (m.a2a as A2aInfo | null) ?? null,
});

const toThreadView = (t: ThreadRow): ThreadView => ({
  id: t.id,
  inbox_id: t.inbox_id,
  subject: t.subject,
  message_count: t.message_count,
  first_message_at: t.first_message_at.toISOString(),
  last_message_at: t.last_message_at.toISOString(),
});

export interface MessageFilter extends PageRequest {
  thread_id?: string;
  since?: Date;
  direction?: 'inbound' | 'outbound';
  /** `any`: every message, held ones included (an operator's view; agents leave it out). */
  disposition?: 'delivered' | 'flagged' | 'quarantined' | 'needs_human' | 'released' | 'any';
  /** An address, or "@domain" for any address there. */
  from?: string;
  /** Words that must each appear in the subject, the sender or the text (case-insensitive). */
  q?: string;
  /** a2a mail of this type (`any`: either), and/or with this correlation id: see a2aFilter. */
  a2a?: 'request' | 'response' | 'any';
  a2a_correlation_id?: string;
}

/**
 * a2a filters match what an agent may act on: mail this inbox sent, and received a2a mail only
 * when it is authenticated (a2a/format.ts a2aTrust). A forged response carrying a requester's
 * correlation id therefore never satisfies its wait.
 */
function a2aFilter(f: Pick<MessageFilter, 'a2a' | 'a2a_correlation_id'>) {
  return (eb: ExpressionBuilder<Database, 'messages'>) => eb.and([
    eb('a2a', 'is not', null),
    eb.or([eb('direction', '=', 'outbound'), eb(sql`a2a->>'authenticated'`, '=', 'true')]),
    ...(f.a2a && f.a2a !== 'any' ? [eb(sql`a2a->>'type'`, '=', f.a2a)] : []),
    ...(f.a2a_correlation_id ? [eb(sql`a2a->>'correlation_id'`, '=', f.a2a_correlation_id)] : []),
  ]);
}

/** `from` filter: an exact address, or "@domain" for every address at that domain. */
function fromFilter(from: string) {
  const f = from.trim().toLowerCase();
  return (eb: ExpressionBuilder<Database, 'messages'>) => f.startsWith('@')
    ? eb(sql`lower(from_address)`, 'like', `%${escapeLike(f)}`)
    : eb(sql`lower(from_address)`, '=', f);
}

const escapeLike = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`);

/**
 * Search: every word must appear in the subject, the sender or the text. A sequential ILIKE per
 * inbox, not a full-text index: an agent's inbox is thousands of messages, not millions, and
 * ILIKE behaves the same on both engines (PGlite ships no tsvector dictionaries beyond simple).
 */
function searchFilter(q: string) {
  const words = q.split(/\s+/).filter(Boolean).slice(0, 8);
  return (eb: ExpressionBuilder<Database, 'messages'>) => eb.and(words.map((w) => {
    const pattern = `%${escapeLike(w)}%`;
    return eb.or([eb('subject', 'ilike', pattern), eb('from_address', 'ilike', pattern), eb('from_name', 'ilike', pattern), eb('text', 'ilike', pattern)]);
  }));
}

export class Messages {
  readonly #db: Kysely<Database>;
  readonly #blobs: BlobStore;
  readonly #inboxes: Inboxes;

  constructor(db: Kysely<Database>, blobs: BlobStore, inboxes: Inboxes) {
    this.#db = db;
    this.#blobs = blobs;
    this.#inboxes = inboxes;
  }

  async #attachmentsOf(ids: string[]): Promise<Map<string, AttachmentRow[]>> {
    const map = new Map<string, AttachmentRow[]>();
    if (!ids.length) return map;
    const rows = await this.#db.selectFrom('attachments').selectAll().where('message_id', 'in', ids).orderBy('message_id').orderBy('position').execute();
    for (const r of rows) map.set(r.message_id, [...(map.get(r.message_id) ?? []), r]);
    return map;
  }

  async list(p: Principal, inboxId: string, f: MessageFilter): Promise<Page<MessageSummary>> {
    await this.#inboxes.get(p, inboxId); // not_found unless live and visible to the principal
    const limit = clampLimit(f.limit);
    const after = decodeCursor(f.cursor);
    // Lists carry a preview, not bodies or headers: reading only the head of `text` keeps a page of
    // 200 cheap, which matters to agents that poll.
    let q = this.#db
      .selectFrom('messages')
      .select([
        'id', 'inbox_id', 'thread_id', 'receipt_id', 'direction', 'from_address', 'from_name', 'to', 'cc', 'reply_to', 'subject', 'date',
        'message_id', 'in_reply_to', 'references', 'size', 'raw_sha256', 'received_at', 'parse_warnings', 'created_at', 'kind', 'return_date', 'disposition',
        sql<string | null>`left(text, 400)`.as('text'),
        // The payload may be 256 KB: a page of 200 carries the rest of the envelope only.
        sql<Record<string, unknown> | null>`a2a - 'payload'`.as('a2a'),
      ])
      .where('inbox_id', '=', inboxId);
    if (after) q = q.where('id', '<', after);
    if (f.thread_id) q = q.where('thread_id', '=', f.thread_id);
    if (f.since) q = q.where('received_at', '>=', f.since);
    if (f.direction) q = q.where('direction', '=', f.direction);
    // Held mail (quarantined, needs_human) is out of default listings: an agent polling its inbox
    // must not read it until somebody released it. Asking for a disposition shows exactly those.
    if (f.disposition === 'any') { /* everything */ } else if (f.disposition) q = q.where('disposition', '=', f.disposition);
    else q = q.where(notHeld);
    if (f.from) q = q.where(fromFilter(f.from));
    if (f.q) q = q.where(searchFilter(f.q));
    if (f.a2a || f.a2a_correlation_id) q = q.where(a2aFilter(f));
    const rows = await q.orderBy('id', 'desc').limit(limit + 1).execute();
    const atts = await this.#attachmentsOf(rows.slice(0, limit).map((r) => r.id));
    return toPage(rows, limit, (r) => toSummary({ ...r, html: null, headers: [], security: null, kind_evidence: null, extracted_text: null }, atts.get(r.id) ?? []));
  }

  /**
   * The first received message in the inbox that became readable at or after `since` and matches
   * the filters, or null: what wait-for-reply checks after every advance of the event log. Held
   * mail does not count (it is not readable until released). `created_at` rather than the SMTP
   * receipt time, so a message received just before `since` but parsed after it is not missed.
   */
  async firstArrival(inboxId: string, f: { since: Date; thread_id?: string; from?: string; a2a?: MessageFilter['a2a']; a2a_correlation_id?: string }): Promise<MessageView | null> {
    let q = this.#db.selectFrom('messages').selectAll()
      .where('inbox_id', '=', inboxId).where('direction', '=', 'inbound').where(sql<boolean>`created_at >= ${f.since}`).where(notHeld);
    if (f.thread_id) q = q.where('thread_id', '=', f.thread_id);
    if (f.from) q = q.where(fromFilter(f.from));
    if (f.a2a || f.a2a_correlation_id) q = q.where(a2aFilter(f));
    const row = await q.orderBy('created_at').orderBy('id').limit(1).executeTakeFirst();
    if (!row) return null;
    const atts = await this.#attachmentsOf([row.id]);
    return toView(row, atts.get(row.id) ?? []);
  }

  /** A message row the principal may see (its inbox live and in scope), else not_found. */
  async #row(p: Principal, id: string): Promise<MessageRow> {
    const row = await this.#db
      .selectFrom('messages')
      .innerJoin('inboxes', 'inboxes.id', 'messages.inbox_id')
      .selectAll('messages')
      .where('messages.id', '=', id)
      .where('inboxes.deleted_at', 'is', null)
      .executeTakeFirst();
    if (!row || !canSeeInbox(p, row.inbox_id)) throw notFound('message');
    return row;
  }

  async get(p: Principal, id: string): Promise<MessageView> {
    const view = (await this.getMany(p, [id])).get(id);
    if (!view) throw notFound('message');
    return view;
  }

  /** `get` for several messages in two statements (the send API answers a group of sends at once); absent ids are left out. `p` null: the caller has checked access already. */
  async getMany(p: Principal | null, ids: string[]): Promise<Map<string, MessageView>> {
    const out = new Map<string, MessageView>();
    if (!ids.length) return out;
    const rows = await this.#db.selectFrom('messages').innerJoin('inboxes', 'inboxes.id', 'messages.inbox_id').selectAll('messages')
      .where('messages.id', 'in', ids).where('inboxes.deleted_at', 'is', null).execute();
    const atts = await this.#attachmentsOf(rows.map((r) => r.id));
    for (const row of rows) if (p === null || canSeeInbox(p, row.inbox_id)) out.set(row.id, toView(row, atts.get(row.id) ?? []));
    return out;
  }

  /** The stored raw message: trace headers Mailroom prepended, then the bytes exactly as received. */
  async raw(p: Principal, id: string): Promise<Buffer> {
    const row = await this.#row(p, id);
    const raw = await this.#blobs.get(row.raw_sha256);
    if (!raw) throw new MailroomError('internal', 'the raw message is missing from the blob store');
    return raw;
  }

  async attachment(p: Principal, messageId: string, attachmentId: string): Promise<{ meta: AttachmentView; content: Buffer }> {
    await this.#row(p, messageId);
    const a = await this.#db.selectFrom('attachments').selectAll().where('id', '=', attachmentId).where('message_id', '=', messageId).executeTakeFirst();
    if (!a) throw notFound('attachment');
    const content = await this.#blobs.get(a.sha256);
    if (!content) throw new MailroomError('internal', 'the attachment is missing from the blob store');
    return { meta: toAttachmentView(a), content };
  }

  async listThreads(p: Principal, inboxId: string, page: PageRequest): Promise<Page<ThreadView>> {
    await this.#inboxes.get(p, inboxId); // not_found unless live and visible to the principal
    const limit = clampLimit(page.limit);
    const after = decodeCursor(page.cursor);
    let q = this.#db.selectFrom('threads').selectAll().where('inbox_id', '=', inboxId);
    if (after) q = q.where('id', '<', after);
    const rows = await q.orderBy('id', 'desc').limit(limit + 1).execute();
    return toPage(rows, limit, toThreadView);
  }

  /** A thread with all its messages, oldest first. */
  /** Releases a held (quarantined or needs_human) message into the inbox, with a message.released event. */
  async release(p: Principal, id: string): Promise<MessageView> {
    const row = await this.#row(p, id);
    if (!row.disposition || !(HELD as readonly string[]).includes(row.disposition)) {
      throw new MailroomError('conflict', `message ${id} is not held (disposition ${row.disposition ?? 'none'})`);
    }
    await this.#db.transaction().execute(async (trx) => {
      await trx.updateTable('messages').set({ disposition: 'released' }).where('id', '=', id).execute();
      // Released mail is received mail from now on: consumers that wait for message.received (a
      // webhook, wait-for-reply, a campaign) see it then, and not before.
      await appendEvents(trx, [
        { type: 'message.released', inbox_id: row.inbox_id, message_id: id, thread_id: row.thread_id, data: { was: row.disposition, by_token: p.tokenId } },
        { type: 'message.received', inbox_id: row.inbox_id, message_id: id, thread_id: row.thread_id, data: { from: row.from_address, subject: row.subject, disposition: 'released', released_from: row.disposition, kind: row.kind, ...a2aEventData(row.a2a) } },
      ]);
    });
    return this.get(p, id);
  }

  /** `includeHeld`: quarantined and needs_human messages too (an operator reviewing them). */
  async getThread(p: Principal, id: string, includeHeld = false): Promise<ThreadView & { messages: MessageView[] }> {
    const t = await this.#db
      .selectFrom('threads')
      .innerJoin('inboxes', 'inboxes.id', 'threads.inbox_id')
      .selectAll('threads')
      .where('threads.id', '=', id)
      .where('inboxes.deleted_at', 'is', null)
      .executeTakeFirst();
    if (!t || !canSeeInbox(p, t.inbox_id)) throw notFound('thread');
    let q = this.#db.selectFrom('messages').selectAll().where('thread_id', '=', id);
    if (!includeHeld) q = q.where(notHeld);
    const rows = await q
      .orderBy('received_at').orderBy('id').limit(1000).execute();
    const atts = await this.#attachmentsOf(rows.map((r) => r.id));
    return { ...toThreadView(t), messages: rows.map((r) => toView(r, atts.get(r.id) ?? [])) };
  }
}
