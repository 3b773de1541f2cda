import { createHash, randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { PgBoss } from 'pg-boss';
import { a2aInfo, findA2a } from '../a2a/format.ts';
import { canSeeInbox, type Principal } from '../auth/scopes.ts';
import type { Config } from '../config/config.ts';
import { MailroomError, notFound } from '../errors.ts';
import { appendEvents } from '../events/events.ts';
import { newId } from '../ids.ts';
import type { Inboxes } from '../inboxes/inboxes.ts';
import { inTransaction, QUEUES } from '../jobs/boss.ts';
import { assignThreads, openThread } from '../messages/threading.ts';
import type { Messages } from '../messages/messages.ts';
import { parseMessage } from '../mime/parse.ts';
import type { BlobStore } from '../store/blobs.ts';
import type { Database, RecipientStatus } from '../store/schema.ts';
import { addressKey, domainOf, type Mailbox } from './addresses.ts';
import { compose, type SendContent, type Threading } from './compose.ts';
import { dkimSignature } from './dkim.ts';
import type { Domains } from './domains.ts';
import type { Limits } from './limits.ts';
import { suppressedFor } from './suppressions.ts';
import { verpAddress } from './verp.ts';
import type { Unsubscribe } from './unsubscribe.ts';

/**
 * The send API's domain side: validate and compose, then store the message and queue its delivery
 * in one transaction, so a `202` means the message is committed and will be delivered (or fail
 * with a reason), whatever crashes afterwards. Idempotency is enforced by a unique index on
 * (inbox, key), not by memory, so it holds across processes sharing PostgreSQL.
 */
export interface SendRequest extends SendContent {
  labels?: string[];
  metadata?: Record<string, unknown>;
  idempotency_key?: string;
  /** Without a key: dedupe on hash(inbox + recipients + campaign + intent). */
  dedupe?: { campaign: string; intent: string };
  trace_id?: string;
  /** List-Unsubscribe (one-click); the inbox's setting when absent. */
  marketing?: boolean;
}

export interface RecipientView {
  address: string;
  kind: 'to' | 'cc' | 'bcc';
  status: RecipientStatus;
  attempts: number;
  response: string | null;
  bounce_type: string | null;
  bounce_reason: string | null;
  transport: string | null;
  updated_at: string;
  sent_at: string | null;
}

export interface DeliveryView {
  status: RecipientStatus | 'partial';
  recipients: RecipientView[];
  trace_id: string;
  idempotency_key: string | null;
  labels: string[];
  metadata: Record<string, unknown>;
  scheduled_at: string | null;
  expires_at: string;
}

/** The a2a record of a message we send (its trust is null: it is ours, not verified at a receipt). */
function outboundA2a(parts: Parameters<typeof findA2a>[0]): string | null {
  const { envelope } = findA2a(parts);
  return envelope ? JSON.stringify(a2aInfo(envelope)) : null;
}

/** Thrown inside the insert transaction when another request already holds the key: roll back, replay. */
class KeyTaken extends Error {}

const iso = (d: Date | string | null) => (d === null ? null : new Date(d).toISOString());

/** Canonical JSON (sorted keys), so the same payload always hashes the same. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') return `{${Object.keys(v).sort().filter((k) => (v as any)[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonical((v as any)[k])}`).join(',')}}`;
  return JSON.stringify(v);
}
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** Aggregate of the recipients' states: in-flight states first, then the common final one. */
export function aggregateStatus(statuses: RecipientStatus[]): DeliveryView['status'] {
  for (const s of ['sending', 'queued', 'deferred'] as const) if (statuses.includes(s)) return s;
  const finals = new Set(statuses);
  return finals.size === 1 ? statuses[0] : 'partial';
}

export interface OutboxDeps {
  db: Kysely<Database>;
  blobs: BlobStore;
  boss: PgBoss;
  inboxes: Inboxes;
  messages: Messages;
  domains: Domains;
  limits: Limits;
  unsubscribe: Unsubscribe;
  /** Where recipients reach this server over HTTP (one-click unsubscribe links). */
  publicUrl: () => string;
  config: Config['outbound'];
}

export class Outbox {
  readonly #d: OutboxDeps;

  constructor(deps: OutboxDeps) {
    this.#d = deps;
  }

  /** `POST /v1/inboxes/{id}/messages`. */
  send(p: Principal, inboxId: string, req: SendRequest, headerKey?: string) {
    return this.#submit(p, inboxId, req, headerKey, null);
  }

  /** `POST /v1/messages/{id}/reply`: to the sender (or everyone with `all`), in the same thread. */
  async reply(p: Principal, parentId: string, req: SendRequest, all: boolean, headerKey?: string) {
    const parent = await this.#d.db.selectFrom('messages').selectAll().where('id', '=', parentId).executeTakeFirst();
    if (!parent || !canSeeInbox(p, parent.inbox_id)) throw notFound('message');
    const inbox = await this.#d.inboxes.get(p, parent.inbox_id);
    const own = addressKey(inbox.address);
    const replyTo = (parent.reply_to as Mailbox[]).length ? (parent.reply_to as Mailbox[]) : parent.from_address ? [{ address: parent.from_address, name: parent.from_name ?? '' }] : [];
    // A reply to our own outbound message (a follow-up) goes to the people it went to.
    const primary = parent.direction === 'outbound' ? (parent.to as Mailbox[]) : replyTo;
    const fmt = (m: Mailbox) => (m.name ? `"${m.name.replace(/["\\]/g, '')}" <${m.address}>` : m.address);
    const notOwn = (m: Mailbox) => addressKey(m.address) !== own;
    const to = req.to?.length ? req.to : primary.filter(notOwn).map(fmt);
    const cc = req.cc ?? (all ? [...(parent.direction === 'outbound' ? [] : (parent.to as Mailbox[])), ...(parent.cc as Mailbox[])].filter(notOwn).map(fmt) : []);
    const subject = req.subject ?? (/^re:/i.test(parent.subject ?? '') ? parent.subject! : `Re: ${parent.subject ?? ''}`.trim());
    const refs = [...(parent.references as string[]), ...(parent.message_id ? [parent.message_id] : [])];
    const threading: Threading = {
      inReplyTo: parent.message_id,
      // RFC 5322 §3.6.4; capped like inbound (first + last 99) so a long thread cannot grow without bound.
      references: refs.length > 100 ? [refs[0], ...refs.slice(-99)] : refs,
    };
    return this.#submit(p, parent.inbox_id, { ...req, to, cc, subject }, headerKey, { parentId, all, threading, threadId: parent.thread_id });
  }

  async #submit(p: Principal, inboxId: string, req: SendRequest, headerKey: string | undefined, reply: { parentId: string; all: boolean; threading: Threading; threadId: string } | null) {
    const { db, blobs, boss, config } = this.#d;
    const inbox = await this.#d.inboxes.get(p, inboxId);
    const now = new Date();
    const traceId = req.trace_id ?? newId('trc');
    const from: Mailbox = { address: inbox.address, name: inbox.display_name ?? '' };
    const id = newId('msg');
    const marketing = req.marketing ?? inbox.marketing;
    const composed = await compose(req, from, reply?.threading ?? { inReplyTo: null, references: [] }, {
      maxSize: config.maxSendSize, traceId, date: now,
      extraHeaders: marketing
        ? async (recipients) => {
          // The unsubscribe token names one message and so one recipient: bulk mail is one message per person.
          if (recipients.length !== 1) throw new MailroomError('invalid_request', 'a marketing send (List-Unsubscribe) takes exactly one recipient');
          return this.#d.unsubscribe.headers(id, inbox.domain, this.#d.publicUrl());
        }
        : undefined,
    });

    if (headerKey !== undefined && req.idempotency_key !== undefined && headerKey !== req.idempotency_key) {
      throw new MailroomError('invalid_request', 'the Idempotency-Key header and idempotency_key differ');
    }
    const key = headerKey ?? req.idempotency_key ?? (req.dedupe
      ? `dedupe:${sha256(canonical({ inbox: inboxId, recipients: composed.recipients.map((r) => addressKey(r.address)).sort(), campaign: req.dedupe.campaign, intent: req.dedupe.intent }))}`
      : null);
    const { idempotency_key: _k, trace_id: _t, ...payload } = req;
    const requestHash = sha256(canonical({ inbox: inboxId, reply: reply ? { parent: reply.parentId, all: reply.all } : null, payload }));

    if (key) {
      const replay = await this.#replay(p, inboxId, key, requestHash, now);
      if (replay) return replay;
    }

    const suppressed = await suppressedFor(db, inboxId, inbox.domain, composed.recipients.map((r) => r.address));
    if (suppressed.size === composed.recipients.length) {
      throw new MailroomError('recipient_suppressed', `every recipient is on the suppression list: ${[...suppressed].map(([a, r]) => `${a} (${r})`).join(', ')}`, {
        details: [...suppressed].map(([address, reason]) => ({ address, reason })),
      });
    }

    // A send the shared limits will hold back says so now (delivery.scheduled_at); the job starts then.
    const sending = await this.#d.domains.sendingDomain(inbox.domain);
    const sendable = composed.recipients.filter((r) => !suppressed.has(addressKey(r.address))).map((r) => r.address);
    const scheduled = await this.#d.limits.predict({ inboxId, domain: inbox.domain, domainCreatedAt: sending?.createdAt ?? null }, sendable, now);

    const raw = sending ? Buffer.concat([await dkimSignature(composed.raw, inbox.domain, sending), composed.raw]) : composed.raw;
    const rawSha = await blobs.put(raw);
    const parsed = await parseMessage(raw);
    const attachmentShas: string[] = [];
    for (const a of parsed.attachments) attachmentShas.push(await blobs.put(a.content));

    const jobId = randomUUID();
    try {
      await db.transaction().execute(async (trx) => {
        if (key) {
          // A key past its window is released, so it can name a new send.
          await trx.updateTable('outbound').set({ idempotency_key: null }).where('inbox_id', '=', inboxId).where('idempotency_key', '=', key).where('key_expires_at', '<=', now).execute();
        }
        const inserted = await trx
          .insertInto('outbound')
          .values({
            id, inbox_id: inboxId, idempotency_key: key, request_hash: requestHash,
            key_expires_at: new Date(now.getTime() + config.idempotencyWindowHours * 3600_000),
            // VERP: an asynchronous bounce names the exact message it is about.
            envelope_from: verpAddress(id, inbox.domain),
            raw_sha256: rawSha, raw_size: raw.length, trace_id: traceId,
            labels: JSON.stringify(req.labels ?? []), metadata: JSON.stringify(req.metadata ?? {}),
            created_at: now, expires_at: new Date(now.getTime() + config.lifetimeHours * 3600_000), next_attempt_at: scheduled ?? now, job_id: jobId,
          })
          .onConflict((oc) => oc.columns(['inbox_id', 'idempotency_key']).where('idempotency_key', 'is not', null).doNothing())
          .returning('id')
          .executeTakeFirst();
        if (!inserted) throw new KeyTaken();

        const threadId = reply
          ? (await assignThreads(trx, [{
            key: id, inboxId, subject: composed.subject || null, at: now, ownId: composed.messageId,
            parents: [...(reply.threading.inReplyTo ? [reply.threading.inReplyTo] : []), ...reply.threading.references],
          }])).get(id)!
          : await openThread(trx, { inboxId, subject: composed.subject || null, at: now, ownId: composed.messageId });
        await trx.insertInto('messages').values({
          id, inbox_id: inboxId, thread_id: threadId, receipt_id: null, direction: 'outbound',
          from_address: from.address, from_name: from.name || null,
          to: JSON.stringify(parsed.to), cc: JSON.stringify(parsed.cc), reply_to: JSON.stringify(parsed.reply_to),
          subject: parsed.subject, date: now, message_id: composed.messageId, in_reply_to: parsed.in_reply_to,
          references: JSON.stringify(parsed.references), text: parsed.text, html: parsed.html, headers: JSON.stringify(parsed.headers),
          size: raw.length, raw_sha256: rawSha, received_at: now, parse_warnings: JSON.stringify(parsed.warnings),
          // What this inbox asked or answered (a2a/): how a requester's wait and lists find it by correlation id.
          a2a: outboundA2a(parsed.attachments),
        }).execute();
        if (parsed.attachments.length) {
          await trx.insertInto('attachments').values(parsed.attachments.map((a, i) => ({
            id: newId('att'), message_id: id, position: i, filename: a.filename, content_type: a.content_type,
            disposition: a.disposition, content_id: a.content_id, size: a.content.length, sha256: attachmentShas[i],
          }))).execute();
        }
        await trx.insertInto('outbound_recipients').values(composed.recipients.map((r) => {
          const why = suppressed.get(addressKey(r.address));
          return {
            id: newId('rcp'), message_id: id, kind: r.kind, address: r.address, domain: domainOf(r.address),
            status: (why ? 'suppressed' : 'queued') as RecipientStatus, response: why ? `suppressed: ${why}` : null,
            bounce_type: null, bounce_reason: null, transport: null, next_attempt_at: scheduled, updated_at: now, sent_at: null,
          };
        })).execute();
        const base = { inbox_id: inboxId, message_id: id, thread_id: threadId, trace_id: traceId };
        await appendEvents(trx, [
          { type: 'message.queued', ...base, data: { recipients: composed.recipients.filter((r) => !suppressed.has(addressKey(r.address))).map((r) => r.address), idempotency_key: key } },
          ...[...suppressed].map(([address, reason]) => ({ type: 'message.suppressed' as const, ...base, data: { recipient: address, reason, cancelled: false } })),
        ], now);
        await boss.insert(QUEUES.send, [{ id: jobId, data: { message_id: id }, startAfter: scheduled ?? undefined, heartbeatSeconds: 10 }], { db: inTransaction(trx) });
      });
    } catch (err) {
      if (!(err instanceof KeyTaken)) throw err;
      // Another request with this key committed first (concurrently, or in another process).
      const replay = await this.#replay(p, inboxId, key!, requestHash, now);
      if (replay) return replay;
      throw new MailroomError('conflict', 'a concurrent request with this idempotency key did not finish; retry');
    }
    return { message: await this.view(p, id), replayed: false };
  }

  async #replay(p: Principal, inboxId: string, key: string, requestHash: string, now: Date) {
    const existing = await this.#d.db.selectFrom('outbound').select(['id', 'request_hash', 'key_expires_at'])
      .where('inbox_id', '=', inboxId).where('idempotency_key', '=', key).executeTakeFirst();
    if (!existing || new Date(existing.key_expires_at) <= now) return null;
    if (existing.request_hash !== requestHash) {
      throw new MailroomError('idempotency_key_reused', `idempotency key "${key.slice(0, 100)}" was already used with a different request (message ${existing.id})`);
    }
    return { message: await this.view(p, existing.id), replayed: true };
  }

  /** The stored message with its delivery state. */
  async view(p: Principal, id: string) {
    const message = await this.#d.messages.get(p, id);
    const delivery = await this.delivery(id);
    return { ...message, delivery };
  }

  async delivery(id: string): Promise<DeliveryView | null> {
    const o = await this.#d.db.selectFrom('outbound').selectAll().where('id', '=', id).executeTakeFirst();
    if (!o) return null;
    const rcpts = await this.#d.db.selectFrom('outbound_recipients').selectAll().where('message_id', '=', id).orderBy('id').execute();
    return {
      status: aggregateStatus(rcpts.map((r) => r.status)),
      recipients: rcpts.map((r) => ({
        address: r.address, kind: r.kind, status: r.status, attempts: r.attempts, response: r.response, bounce_type: r.bounce_type,
        bounce_reason: r.bounce_reason, transport: r.transport, updated_at: iso(r.updated_at)!, sent_at: iso(r.sent_at),
      })),
      trace_id: o.trace_id,
      idempotency_key: o.idempotency_key,
      labels: o.labels as string[],
      metadata: o.metadata as Record<string, unknown>,
      scheduled_at: iso(o.next_attempt_at),
      expires_at: iso(o.expires_at)!,
    };
  }
}
