import type { Kysely } from 'kysely';
import type { PgBoss } from 'pg-boss';
import { canSeeInbox, hasScope, type Principal, type Scope } from '../auth/scopes.ts';
import { MailroomError, notFound } from '../errors.ts';
import { newId } from '../ids.ts';
import type { Inboxes } from '../inboxes/inboxes.ts';
import { QUEUES } from '../jobs/boss.ts';
import type { Logger } from '../log.ts';
import { parseMailbox } from '../outbound/addresses.ts';
import { compose } from '../outbound/compose.ts';
import type { Outbox } from '../outbound/outbox.ts';
import { suppressedFor } from '../outbound/suppressions.ts';
import { clampLimit, decodeCursor, toPage, type Page } from '../store/pagination.ts';
import type { Database } from '../store/schema.ts';
import { getDraft, insertDraft, listDrafts, newerInbound, transition } from './store.ts';
import type { DraftRequest, DraftRow, DraftStatus } from './tables.ts';

/**
 * Drafts: a message prepared by an agent (or a campaign run) that a person approves, edits or
 * rejects before it goes. Approving is sending the stored request through the outbox, checked
 * again at that moment: the suppression list (the outbox refuses a suppressed address), and for an
 * answer, whether the thread received something newer since the draft was written — the human
 * approved words written for a conversation that has moved on. A draft of a campaign step is sent
 * by its run (engine.ts), which checks the campaign's stop conditions itself; other drafts are sent
 * by a `draft-send` job at `send_at` (or at once).
 *
 * Scopes: `drafts:write` writes and edits drafts and cannot send (the draft-only token);
 * approving needs `messages:send`, since it sends.
 */
export interface DraftInput extends DraftRequest {
  reply_to_message_id?: string;
  reply_all?: boolean;
  send_at?: string;
  client_id?: string;
}

export interface DraftView {
  id: string;
  inbox_id: string;
  status: DraftStatus;
  reply_to_message_id: string | null;
  reply_all: boolean;
  content: DraftRequest;
  send_at: string | null;
  client_id: string | null;
  campaign_id: string | null;
  run_id: string | null;
  /** The campaign step (1-based) this draft is, or null. */
  step: number | null;
  message_id: string | null;
  reviewed_by: string | null;
  review_note: string | null;
  error: { code: string; message: string } | null;
  created_at: string;
  updated_at: string;
  approved_at: string | null;
  sent_at: string | null;
}

const iso = (d: Date | string | null) => (d === null ? null : new Date(d).toISOString());

export function draftView(r: DraftRow): DraftView {
  return {
    id: r.id, inbox_id: r.inbox_id, status: r.status, reply_to_message_id: r.reply_to_message_id, reply_all: r.reply_all,
    content: r.request, send_at: iso(r.send_at), client_id: r.client_id, campaign_id: r.campaign_id, run_id: r.run_id,
    step: r.step === null ? null : r.step + 1, message_id: r.message_id, reviewed_by: r.reviewed_by, review_note: r.review_note,
    error: r.error, created_at: iso(r.created_at)!, updated_at: iso(r.updated_at)!, approved_at: iso(r.approved_at), sent_at: iso(r.sent_at),
  };
}

export interface DraftsDeps {
  db: Kysely<Database>;
  boss: PgBoss;
  inboxes: Inboxes;
  outbox: Outbox;
  log: Logger;
  maxSendSize: number;
}

/** One of the scopes, or 403 naming them. */
function principalWithAny(p: Principal, scopes: Scope[]): Principal {
  if (scopes.some((s) => hasScope(p, s))) return p;
  throw new MailroomError('insufficient_scope', `this token lacks the ${scopes.map((s) => `"${s}"`).join(' or ')} scope`);
}

export class Drafts {
  readonly #d: DraftsDeps;

  constructor(deps: DraftsDeps) {
    this.#d = deps;
  }

  /** `POST /v1/inboxes/{id}/drafts`: validated as a send would be, stored pending. */
  async create(p: Principal, inboxId: string, input: DraftInput): Promise<{ draft: DraftView; created: boolean }> {
    principalWithAny(p, ['drafts:write', 'messages:send']);
    const inbox = await this.#d.inboxes.get(p, inboxId);
    const { reply_to_message_id, reply_all, send_at, client_id, ...request } = input;
    const replyTo = reply_to_message_id ? await this.#parent(p, inbox.id, reply_to_message_id) : null;
    await this.#validate(request, inbox.address, replyTo);
    const { row, created } = await insertDraft(this.#d.db, {
      id: newId('drf'), inbox_id: inbox.id, reply_to_message_id: replyTo?.id ?? null, reply_all: !!reply_all, request,
      send_at: parseSendAt(send_at), client_id: client_id ?? null, token_id: p.tokenId,
    }, { inbox_id: inbox.id, thread_id: replyTo?.thread_id ?? null, trace_id: request.trace_id ?? null });
    return { draft: draftView(row), created };
  }

  async list(p: Principal, f: { inbox_id?: string; status?: DraftStatus; campaign_id?: string; limit?: number; cursor?: string }): Promise<Page<DraftView>> {
    principalWithAny(p, ['drafts:write', 'messages:read']);
    if (f.inbox_id && !canSeeInbox(p, f.inbox_id)) throw notFound('inbox');
    const limit = clampLimit(f.limit);
    const rows = await listDrafts(this.#d.db, { inboxIds: p.inboxIds, inbox_id: f.inbox_id, status: f.status, campaign_id: f.campaign_id, after: decodeCursor(f.cursor), limit });
    return toPage(rows, limit, draftView);
  }

  async get(p: Principal, id: string): Promise<DraftView> {
    principalWithAny(p, ['drafts:write', 'messages:read']);
    return draftView(await this.#visible(p, id));
  }

  /** `POST /v1/drafts/{id}/edit`: new content (or send time) for a pending draft, validated again. */
  async edit(p: Principal, id: string, changes: Partial<DraftRequest> & { send_at?: string | null }): Promise<DraftView> {
    principalWithAny(p, ['drafts:write', 'messages:send']);
    const row = await this.#visible(p, id);
    this.#mustBe(row, ['pending']);
    const { send_at, ...content } = changes;
    const request = { ...row.request, ...content };
    const inbox = await this.#d.inboxes.get(p, row.inbox_id);
    const replyTo = row.reply_to_message_id ? await this.#parent(p, row.inbox_id, row.reply_to_message_id) : null;
    await this.#validate(request, inbox.address, replyTo);
    const updated = await transition(this.#d.db, this.#d.boss, id, ['pending'], {
      request, ...(send_at !== undefined ? { send_at: parseSendAt(send_at ?? undefined) } : {}), error: null,
    }, { event: this.#event(row, 'draft.updated', { by: p.tokenId }) });
    return draftView(updated ?? this.#mustBe(await this.#visible(p, id), ['pending']));
  }

  /**
   * `POST /v1/drafts/{id}/approve`: checks what can be checked now (the thread has nothing newer,
   * no recipient is suppressed) and hands the draft on: to the `draft-send` job at its time, or to
   * its campaign run. `force` sends even though the thread has moved on.
   */
  async approve(p: Principal, id: string, o: { send_at?: string; note?: string; force?: boolean } = {}): Promise<DraftView> {
    if (!hasScope(p, 'messages:send')) throw new MailroomError('insufficient_scope', 'approving a draft sends it: this token lacks the "messages:send" scope');
    const row = await this.#visible(p, id);
    this.#mustBe(row, ['pending']);
    if (row.reply_to_message_id && !o.force) {
      const newer = await newerInbound(this.#d.db, row.reply_to_message_id, new Date(row.updated_at));
      if (newer) {
        throw new MailroomError('draft_stale', `the thread received ${newer.id} from ${newer.from_address ?? 'someone'} after this draft was written; read it, edit the draft, or approve with force`, {
          details: [{ message_id: newer.id }],
        });
      }
    }
    await this.#checkSuppression(row);
    const sendAt = o.send_at !== undefined ? parseSendAt(o.send_at) : row.send_at ? new Date(row.send_at) : null;
    const byRun = row.run_id !== null && row.step !== null;
    const updated = await transition(this.#d.db, this.#d.boss, id, ['pending'], {
      status: 'approved', approved_at: new Date(), reviewed_by: p.tokenId, review_note: o.note ?? null, send_at: sendAt, error: null,
    }, {
      event: this.#event(row, 'draft.approved', { by: p.tokenId, send_at: iso(sendAt) }),
      // A campaign step is sent by its run (woken by draft.approved), which checks its stop conditions.
      sendJob: byRun ? undefined : { startAfter: sendAt && sendAt > new Date() ? sendAt : null },
    });
    if (!updated) return this.#raced(p, id, 'approve');
    return draftView(updated);
  }

  /** `POST /v1/drafts/{id}/reject`: it will never be sent; a campaign run waiting for it ends. */
  async reject(p: Principal, id: string, o: { note?: string } = {}): Promise<DraftView> {
    principalWithAny(p, ['drafts:write', 'messages:send']);
    const row = await this.#visible(p, id);
    this.#mustBe(row, ['pending', 'approved']);
    const updated = await transition(this.#d.db, this.#d.boss, id, ['pending', 'approved'], {
      status: 'rejected', reviewed_by: p.tokenId, review_note: o.note ?? null,
    }, { event: this.#event(row, 'draft.rejected', { by: p.tokenId, note: o.note ?? null }) });
    if (!updated) return this.#raced(p, id, 'reject');
    return draftView(updated);
  }

  /**
   * The `draft-send` job: sends an approved draft with the idempotency key `draft:<id>`, so a
   * retry after a crash between the outbox's commit and ours is a replay of the same message. A
   * reply received in the thread since the approval sends the draft back to pending (its approver
   * has not seen that reply); a refusal by the outbox (every recipient suppressed…) fails it.
   */
  async sendApproved(id: string, jobId: string): Promise<void> {
    const row = await getDraft(this.#d.db, id);
    if (!row || row.status !== 'approved' || row.job_id !== jobId) return; // rejected meanwhile, or replaced
    if (row.reply_to_message_id && row.approved_at) {
      const newer = await newerInbound(this.#d.db, row.reply_to_message_id, new Date(row.approved_at));
      if (newer) {
        await transition(this.#d.db, this.#d.boss, id, ['approved'], {
          status: 'pending', approved_at: null, error: { code: 'draft_stale', message: `the thread received ${newer.id} after the approval; approve again once read` },
        }, { event: this.#event(row, 'draft.updated', { reason: 'draft_stale', message_id: newer.id }) });
        return;
      }
    }
    const principal: Principal = { tokenId: `draft:${id}`, scopes: new Set(['messages:send', 'messages:read', 'inboxes:read']), inboxIds: new Set([row.inbox_id]) };
    const key = `draft:${id}`;
    let message: { id: string; thread_id: string };
    try {
      const sent = row.reply_to_message_id
        ? await this.#d.outbox.reply(principal, row.reply_to_message_id, row.request, row.reply_all, key)
        : await this.#d.outbox.send(principal, row.inbox_id, row.request, key);
      message = sent.message;
    } catch (err) {
      // A refusal is final (the same request would be refused again); anything else is retried by the job.
      if (err instanceof MailroomError && err.status < 500) {
        await transition(this.#d.db, this.#d.boss, id, ['approved'], { status: 'failed', error: { code: err.code, message: err.message } }, {
          event: this.#event(row, 'draft.failed', { code: err.code, message: err.message }),
        });
        return;
      }
      throw err;
    }
    await this.markSent(row, message);
  }

  /** Records the message a draft became (the draft-send job, or a campaign run). */
  async markSent(row: DraftRow, message: { id: string; thread_id: string }): Promise<void> {
    await transition(this.#d.db, this.#d.boss, row.id, ['approved'], { status: 'sent', message_id: message.id, sent_at: new Date() }, {
      event: { ...this.#event(row, 'draft.sent', { message_id: message.id }), message_id: message.id, thread_id: message.thread_id },
    });
  }

  async #visible(p: Principal, id: string): Promise<DraftRow> {
    const row = await getDraft(this.#d.db, id);
    if (!row || !canSeeInbox(p, row.inbox_id)) throw notFound('draft');
    return row;
  }

  #mustBe(row: DraftRow, states: DraftStatus[]): DraftRow {
    if (!states.includes(row.status)) throw new MailroomError('draft_not_pending', `draft ${row.id} is ${row.status}; only a ${states.join(' or ')} draft can be changed`);
    return row;
  }

  /** Someone else changed the draft between our read and our write: say what it is now. */
  async #raced(p: Principal, id: string, action: string): Promise<never> {
    const now = await this.#visible(p, id);
    throw new MailroomError('draft_not_pending', `draft ${id} became ${now.status} before it could ${action === 'approve' ? 'be approved' : 'be rejected'}`);
  }

  async #parent(p: Principal, inboxId: string, messageId: string): Promise<{ id: string; thread_id: string; from_address: string | null }> {
    const m = await this.#d.db.selectFrom('messages').select(['id', 'inbox_id', 'thread_id', 'from_address']).where('id', '=', messageId).executeTakeFirst();
    if (!m || !canSeeInbox(p, m.inbox_id)) throw notFound('message');
    if (m.inbox_id !== inboxId) throw new MailroomError('invalid_request', `reply_to_message_id: message ${messageId} is not in inbox ${inboxId}`);
    return m;
  }

  /** The same checks a send makes at its door (addresses, header injection, size), by composing it once. */
  async #validate(request: DraftRequest, from: string, replyTo: { from_address: string | null } | null): Promise<void> {
    const to = request.to?.length ? request.to : replyTo?.from_address ? [replyTo.from_address] : undefined;
    if (!to?.length && !request.cc?.length && !request.bcc?.length) throw new MailroomError('invalid_request', 'a draft needs at least one recipient (to, cc or bcc), or reply_to_message_id');
    await compose({ ...request, to }, { address: from, name: '' }, { inReplyTo: null, references: [] }, { maxSize: this.#d.maxSendSize, traceId: 'draft-validation' });
  }

  async #checkSuppression(row: DraftRow): Promise<void> {
    const inbox = await this.#d.db.selectFrom('inboxes').select(['domain']).where('id', '=', row.inbox_id).executeTakeFirstOrThrow();
    // The same parsing the send uses (validated at creation, so it cannot throw here).
    const addresses = (['to', 'cc', 'bcc'] as const).flatMap((k) => (row.request[k] ?? []).map((a, i) => parseMailbox(a, `${k}[${i}]`).address));
    if (!addresses.length) return; // an answer's recipient is the parent's sender: the outbox checks it at send time
    const suppressed = await suppressedFor(this.#d.db, row.inbox_id, inbox.domain, addresses);
    if (suppressed.size === addresses.length) {
      throw new MailroomError('recipient_suppressed', `every recipient is on the suppression list: ${[...suppressed].map(([a, r]) => `${a} (${r})`).join(', ')}`, {
        details: [...suppressed].map(([address, reason]) => ({ address, reason })),
      });
    }
  }

  #event(row: DraftRow, type: 'draft.updated' | 'draft.approved' | 'draft.rejected' | 'draft.sent' | 'draft.failed', data: Record<string, unknown>) {
    return {
      type, inbox_id: row.inbox_id, trace_id: row.request.trace_id ?? null,
      data: { draft_id: row.id, campaign_id: row.campaign_id, run_id: row.run_id, ...data },
    } as const;
  }
}

function parseSendAt(v: string | undefined): Date | null {
  if (v === undefined) return null;
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) throw new MailroomError('invalid_request', `send_at: "${v}" is not an ISO 8601 time`);
  return d;
}

/** Works `draft-send` jobs in this process. */
export async function startDraftWorker(drafts: Drafts, boss: PgBoss): Promise<void> {
  await boss.work<{ draft_id: string }>(QUEUES.draft, { batchSize: 4, pollingIntervalSeconds: 1 }, async (jobs) => {
    for (const job of jobs) await drafts.sendApproved(job.data.draft_id, job.id);
  });
}
