import { createHash, randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { PgBoss } from 'pg-boss';
import { a2aInfo, findA2a } from '../a2a/format.ts';
import { canSeeInbox, type Principal } from '../auth/scopes.ts';
import type { Config } from '../config/config.ts';
import { MailroomError, notFound } from '../errors.ts';
import { eventRows } from '../events/events.ts';
import { newId } from '../ids.ts';
import type { Inboxes } from '../inboxes/inboxes.ts';
import { inTransactionPrepared, QUEUES } from '../jobs/boss.ts';
import { assignThreads, newThreads } from '../messages/threading.ts';
import { toView, type Messages } from '../messages/messages.ts';
import type { ParsedMessage } from '../mime/parse.ts';
import { sha256Hex, type BlobStore } from '../store/blobs.ts';
import { bulkInsertAll } from '../store/bulk.ts';
import { GroupCommit } from '../store/group-commit.ts';
import type { AttachmentRow, Database, MessageRow, OutboundRow, RecipientRow, RecipientStatus } from '../store/schema.ts';
import { addressKey, domainOf, type Mailbox } from './addresses.ts';
import type { SendContent, Threading } from './compose.ts';
import type { Domains } from './domains.ts';
import type { Prepared, Preparer } from './prepare.ts';
import type { Limits } from './limits.ts';
import { suppressedForSenders } from './suppressions.ts';
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

/** A group's answer for a send whose key another send already holds: its caller replays that one. */
const KEY_TAKEN = Symbol('key taken');

interface ReplyTo { parentId: string; all: boolean; threading: Threading }
type SendResult = { message: Awaited<ReturnType<Outbox['view']>>; replayed: boolean };

/** A send composed and signed (its blobs written, or, for a table store, written with the group), waiting for its group's commit (Outbox #writeGroup). */
interface PreparedSend {
  id: string;
  inboxId: string;
  domain: string;
  domainCreatedAt: Date | null;
  key: string | null;
  requestHash: string;
  now: Date;
  traceId: string;
  from: Mailbox;
  composed: Prepared['composed'];
  raw: Buffer;
  rawSha: string;
  parsed: ParsedMessage;
  attachmentShas: string[];
  reply: ReplyTo | null;
  labels: string[];
  metadata: Record<string, unknown>;
}

const iso = (d: Date | string | null) => (d === null ? null : new Date(d).toISOString());

/** A row read back as JSON with its timestamp columns made Dates again. */
function revive(row: Record<string, unknown>, dates: string[]): Record<string, unknown> {
  for (const c of dates) if (typeof row[c] === 'string') row[c] = new Date(row[c] as string);
  return row;
}

/** Canonical JSON (sorted keys), so the same payload always hashes the same. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') return `{${Object.keys(v).sort().filter((k) => (v as any)[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonical((v as any)[k])}`).join(',')}}`;
  return JSON.stringify(v);
}
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** A message's delivery state as the API shows it: its outbound row and its recipients' rows (by id). */
function deliveryView(o: OutboundRow, rcpts: RecipientRow[]): DeliveryView {
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
  /** Composes, signs and parses (on worker threads in a running Mailroom). */
  preparer: Preparer;
}

export class Outbox {
  readonly #d: OutboxDeps;
  /**
   * Concurrent sends are stored together (store/group-commit.ts), one group at a time: the next
   * group gathers while this one commits. On PGlite a second group would only queue behind the
   * first; on PostgreSQL two at once made groups half as big for the same work per group, and
   * PostgreSQL's CPU per send is what a busy server runs out of (bench/README.md, "Fewer round trips").
   */
  readonly #group: GroupCommit<PreparedSend, SendResult | typeof KEY_TAKEN>;

  constructor(deps: OutboxDeps) {
    this.#d = deps;
    this.#group = new GroupCommit((items) => this.#writeGroup(items), { maxGroup: 64, maxInflight: 1 });
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
    return this.#submit(p, parent.inbox_id, { ...req, to, cc, subject }, headerKey, { parentId, all, threading });
  }

  async #submit(p: Principal, inboxId: string, req: SendRequest, headerKey: string | undefined, reply: ReplyTo | null) {
    const { blobs, config } = this.#d;
    const inbox = await this.#d.inboxes.get(p, inboxId);
    const now = new Date();
    const traceId = req.trace_id ?? newId('trc');
    const from: Mailbox = { address: inbox.address, name: inbox.display_name ?? '' };
    const id = newId('msg');
    const marketing = req.marketing ?? inbox.marketing;
    // Composing, signing and parsing run on a preparation thread (prepare.ts); everything that
    // touches the tables is done for a group of concurrent sends at once (#writeGroup).
    const sending = await this.#d.domains.sendingDomain(inbox.domain);
    const { to, cc, bcc, subject, text, html, attachments, headers } = req;
    const { composed, raw, parsed } = await this.#d.preparer.prepare({
      content: { to, cc, bcc, subject, text, html, attachments, headers }, from,
      threading: reply?.threading ?? { inReplyTo: null, references: [] }, maxSize: config.maxSendSize, traceId, date: now,
      unsubscribe: marketing ? await this.#d.unsubscribe.headers(id, inbox.domain, this.#d.publicUrl()) : null,
      dkim: sending ? { domain: inbox.domain, key: sending } : null,
    });

    if (headerKey !== undefined && req.idempotency_key !== undefined && headerKey !== req.idempotency_key) {
      throw new MailroomError('invalid_request', 'the Idempotency-Key header and idempotency_key differ');
    }
    const key = headerKey ?? req.idempotency_key ?? (req.dedupe
      ? `dedupe:${sha256(canonical({ inbox: inboxId, recipients: composed.recipients.map((r) => addressKey(r.address)).sort(), campaign: req.dedupe.campaign, intent: req.dedupe.intent }))}`
      : null);
    const { idempotency_key: _k, trace_id: _t, ...payload } = req;
    const requestHash = sha256(canonical({ inbox: inboxId, reply: reply ? { parent: reply.parentId, all: reply.all } : null, payload }));

    // A table store takes the blobs in the group's transaction, one statement for the group (#writeGroup).
    const put = (data: Buffer) => (blobs.putMany ? sha256Hex(data) : blobs.put(data));
    const rawSha = await put(raw);
    const attachmentShas: string[] = [];
    for (const a of parsed.attachments) attachmentShas.push(await put(a.content));

    const result = await this.#group.submit({
      id, inboxId, domain: inbox.domain, domainCreatedAt: sending?.createdAt ?? null, key, requestHash, now, traceId, from,
      composed, raw, rawSha, parsed, attachmentShas, reply, labels: req.labels ?? [], metadata: req.metadata ?? {},
    });
    if (result !== KEY_TAKEN) return result;
    // Another request with this key committed first (earlier, concurrently, or in another process).
    const replay = await this.#replay(p, inboxId, key!, requestHash, now);
    if (replay) return replay;
    throw new MailroomError('conflict', 'a concurrent request with this idempotency key did not finish; retry');
  }

  /**
   * Stores a group of prepared sends and queues their deliveries: a constant number of statements
   * for the group (reads of the keys in use, the suppressions and the rate windows, side by side;
   * one transaction of bulk inserts whose RETURNING rows are the answers), instead of some twenty per send. At hundreds of
   * sends a second those round trips, not the rows, were the cost (bench/README.md "Outbound").
   */
  async #writeGroup(items: PreparedSend[]): Promise<(SendResult | typeof KEY_TAKEN | Error)[]> {
    const { db, boss, config } = this.#d;
    const out: (SendResult | typeof KEY_TAKEN | Error | undefined)[] = items.map(() => undefined);
    const now = new Date();
    // 1. The group's reads, side by side: the idempotency keys in use, the suppressions, the rate
    // windows. Each is read for every send of the group, though a replay needs none of the others.
    const keyed = items.filter((it) => it.key);
    const senderOf = (it: PreparedSend) => ({ inboxId: it.inboxId, domain: it.domain, domainCreatedAt: it.domainCreatedAt });
    const [keyRows, suppressed, predict] = await Promise.all([
      keyed.length
        ? db.selectFrom('outbound').select(['inbox_id', 'idempotency_key', 'key_expires_at'])
          .where('inbox_id', 'in', [...new Set(keyed.map((it) => it.inboxId))]).where('idempotency_key', 'in', [...new Set(keyed.map((it) => it.key!))]).execute()
        : [],
      suppressedForSenders(db, items.map((it) => ({ inboxId: it.inboxId, domain: it.domain, addresses: it.composed.recipients.map((r) => r.address) }))),
      this.#d.limits.predictor(items.map((it) => ({ sender: senderOf(it), addresses: it.composed.recipients.map((r) => r.address) })), now),
    ]);
    // 2. A key already naming a live send is a replay (before suppression: a replay answers with the
    // original even if its recipient has been suppressed since).
    const live = new Set<string>();
    const expired = new Set<string>();
    for (const r of keyRows) (new Date(r.key_expires_at) > now ? live : expired).add(`${r.inbox_id}\n${r.idempotency_key}`);
    items.forEach((it, i) => { if (it.key && live.has(`${it.inboxId}\n${it.key}`)) out[i] = KEY_TAKEN; });
    // Suppressed recipients: a send to nobody else is refused.
    let todo = items.flatMap((it, i) => (out[i] === undefined ? [i] : []));
    const suppressedOf = new Map(todo.map((i) => [i, suppressed[i]]));
    for (const i of todo) {
      const off = suppressedOf.get(i)!;
      if (off.size < items[i].composed.recipients.length) continue;
      out[i] = new MailroomError('recipient_suppressed', `every recipient is on the suppression list: ${[...off].map(([a, r]) => `${a} (${r})`).join(', ')}`, {
        details: [...off].map(([address, reason]) => ({ address, reason })),
      });
    }
    todo = todo.filter((i) => out[i] === undefined);
    if (!todo.length) return out as (SendResult | typeof KEY_TAKEN | Error)[];
    const sendableOf = (i: number) => items[i].composed.recipients.filter((r) => !suppressedOf.get(i)!.has(addressKey(r.address)));
    // 3. A send the shared limits will hold back says so now (delivery.scheduled_at); the job starts then.
    const predicted = await Promise.all(todo.map((i) => predict(senderOf(items[i]), sendableOf(i).map((r) => r.address))));
    const scheduledOf = new Map(todo.map((i, j) => [i, predicted[j]]));

    // 4. One transaction for the group.
    const stored = await db.transaction().execute(async (trx) => {
      const keys = todo.filter((i) => expired.has(`${items[i].inboxId}\n${items[i].key}`));
      if (keys.length) {
        // A key past its window is released, so it can name a new send. (One that expires between
        // the read above and here is not: the insert below then finds it taken and the caller
        // replays, which sees it expired and answers 409 conflict, asking for a retry.)
        await trx.updateTable('outbound').set({ idempotency_key: null })
          .where((eb) => eb(eb.refTuple('inbox_id', 'idempotency_key'), 'in', keys.map((i) => eb.tuple(items[i].inboxId, items[i].key!))))
          .where('key_expires_at', '<=', now).execute();
      }
      await this.#d.blobs.putMany?.(todo.flatMap((i) => [items[i].raw, ...items[i].parsed.attachments.map((a) => a.content)]), trx);
      // Two sends with one key in this group, or one committed by another process meanwhile: the
      // unique index keeps the first, the others replay it.
      const inserted = await trx.insertInto('outbound').values(todo.map((i) => {
        const it = items[i];
        return {
          id: it.id, inbox_id: it.inboxId, idempotency_key: it.key, request_hash: it.requestHash,
          key_expires_at: new Date(it.now.getTime() + config.idempotencyWindowHours * 3600_000),
          // VERP: an asynchronous bounce names the exact message it is about.
          envelope_from: verpAddress(it.id, it.domain),
          raw_sha256: it.rawSha, raw_size: it.raw.length, trace_id: it.traceId,
          labels: JSON.stringify(it.labels), metadata: JSON.stringify(it.metadata),
          created_at: it.now, expires_at: new Date(it.now.getTime() + config.lifetimeHours * 3600_000), next_attempt_at: scheduledOf.get(i) ?? it.now, job_id: randomUUID(),
        };
      })).onConflict((oc) => oc.columns(['inbox_id', 'idempotency_key']).where('idempotency_key', 'is not', null).doNothing())
        .returningAll().execute();
      const outboundOf = new Map(inserted.map((r) => [r.id, r]));
      for (const i of todo) if (!outboundOf.has(items[i].id)) out[i] = KEY_TAKEN;
      const go = todo.filter((i) => outboundOf.has(items[i].id));
      if (!go.length) return { go, views: new Map() };

      const threadOf = new Map<number, string>();
      const replies = go.filter((i) => items[i].reply);
      const assigned = await assignThreads(trx, replies.map((i) => {
        const { id, inboxId, composed, now: at, reply } = items[i];
        return { key: id, inboxId, subject: composed.subject || null, at, ownId: composed.messageId, parents: [...(reply!.threading.inReplyTo ? [reply!.threading.inReplyTo] : []), ...reply!.threading.references] };
      }));
      for (const i of replies) threadOf.set(i, assigned.get(items[i].id)!);
      const fresh = go.filter((i) => !items[i].reply);
      const opened = newThreads(fresh.map((i) => ({ inboxId: items[i].inboxId, subject: items[i].composed.subject || null, at: items[i].now, ownId: items[i].composed.messageId })));
      fresh.forEach((i, j) => threadOf.set(i, opened.ids[j]));

      // One statement for the group's rows (store/bulk.ts bulkInsertAll): new threads, messages,
      // attachments, recipients and events, the last three answering with what they stored.
      const [, , messageJson, attachmentJson, recipientJson] = await bulkInsertAll(trx, [
        { table: 'threads', rows: opened.threads },
        { table: 'thread_refs', rows: opened.refs },
        {
          table: 'messages',
          rows: go.map((i) => {
            const { id, inboxId, from, parsed, now: at, composed, raw, rawSha } = items[i];
            return {
              id, inbox_id: inboxId, thread_id: threadOf.get(i), receipt_id: null, direction: 'outbound',
              from_address: from.address, from_name: from.name || null,
              to: JSON.stringify(parsed.to), cc: JSON.stringify(parsed.cc), reply_to: JSON.stringify(parsed.reply_to),
              subject: parsed.subject, date: at, message_id: composed.messageId, in_reply_to: parsed.in_reply_to,
              references: JSON.stringify(parsed.references), text: parsed.text, html: parsed.html, headers: JSON.stringify(parsed.headers),
              size: raw.length, raw_sha256: rawSha, received_at: at, parse_warnings: JSON.stringify(parsed.warnings),
              // What this inbox asked or answered (a2a/): how a requester's wait and lists find it by correlation id.
              a2a: outboundA2a(parsed.attachments),
            };
          }),
          opts: { json: ['to', 'cc', 'reply_to', 'references', 'headers', 'parse_warnings', 'a2a'], returning: true },
        },
        {
          table: 'attachments',
          rows: go.flatMap((i) => items[i].parsed.attachments.map((a, n) => ({
            id: newId('att'), message_id: items[i].id, position: n, filename: a.filename, content_type: a.content_type,
            disposition: a.disposition, content_id: a.content_id, size: a.content.length, sha256: items[i].attachmentShas[n],
          }))),
          opts: { returning: true },
        },
        {
          table: 'outbound_recipients',
          rows: go.flatMap((i) => items[i].composed.recipients.map((r) => {
            const why = suppressedOf.get(i)!.get(addressKey(r.address));
            return {
              id: newId('rcp'), message_id: items[i].id, kind: r.kind, address: r.address, domain: domainOf(r.address),
              status: (why ? 'suppressed' : 'queued') as RecipientStatus, response: why ? `suppressed: ${why}` : null,
              next_attempt_at: scheduledOf.get(i) ?? null, updated_at: items[i].now,
            };
          })),
          opts: { returning: true },
        },
        {
          table: 'events',
          rows: eventRows(go.flatMap((i) => {
            const it = items[i];
            const base = { inbox_id: it.inboxId, message_id: it.id, thread_id: threadOf.get(i)!, trace_id: it.traceId };
            return [
              { type: 'message.queued' as const, ...base, data: { recipients: sendableOf(i).map((r) => r.address), idempotency_key: it.key } },
              ...[...suppressedOf.get(i)!].map(([address, reason]) => ({ type: 'message.suppressed' as const, ...base, data: { recipient: address, reason, cancelled: false } })),
            ];
          }), now),
          opts: { json: ['data'] },
        },
      ]);
      // Back as JSON: the timestamps the answers read become Dates again, as a SELECT gives them.
      const messageRows = messageJson.map((m) => revive(m, ['date', 'received_at', 'created_at']) as unknown as MessageRow);
      const attachmentRows = attachmentJson as unknown as AttachmentRow[];
      const recipientRows = recipientJson.map((r) => revive(r, ['next_attempt_at', 'updated_at', 'sent_at']) as unknown as RecipientRow);
      await boss.insert(QUEUES.send, go.map((i) => ({
        id: outboundOf.get(items[i].id)!.job_id!, data: { message_id: items[i].id }, startAfter: scheduledOf.get(i) ?? undefined, heartbeatSeconds: 10,
      })), { db: inTransactionPrepared(trx) });
      // 5. The answers, from the rows as written (RETURNING): no statement reads them back.
      const attsOf = Map.groupBy(attachmentRows, (a) => a.message_id);
      const rcptsOf = Map.groupBy(recipientRows.toSorted((a, b) => (a.id < b.id ? -1 : 1)), (r) => r.message_id);
      const views = new Map(messageRows.map((m) => [m.id, {
        ...toView(m, (attsOf.get(m.id) ?? []).toSorted((a, b) => a.position - b.position)),
        delivery: deliveryView(outboundOf.get(m.id)!, rcptsOf.get(m.id) ?? []),
      }]));
      return { go, views };
    });
    for (const i of stored.go) out[i] = { message: stored.views.get(items[i].id)!, replayed: false };
    return out as (SendResult | typeof KEY_TAKEN | Error)[];
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
    return (await this.deliveries([id])).get(id) ?? null;
  }

  /** The delivery state of several messages, in two statements. */
  async deliveries(ids: string[]): Promise<Map<string, DeliveryView>> {
    const out = new Map<string, DeliveryView>();
    if (!ids.length) return out;
    const rows = await this.#d.db.selectFrom('outbound').selectAll().where('id', 'in', ids).execute();
    const rcptsOf = Map.groupBy(await this.#d.db.selectFrom('outbound_recipients').selectAll().where('message_id', 'in', ids).orderBy('id').execute(), (r) => r.message_id);
    for (const o of rows) out.set(o.id, deliveryView(o, rcptsOf.get(o.id) ?? []));
    return out;
  }
}
