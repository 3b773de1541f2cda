import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Kysely } from 'kysely';
import { appendEvents } from '../events/events.ts';
import type { Database } from '../store/schema.ts';
import { addSuppression } from './suppressions.ts';

/**
 * One-click unsubscribe (RFC 8058) and its mailto: twin (RFC 2369). A marketing send has exactly
 * one recipient, so the message id names both the recipient and the sending inbox; the token is that
 * id plus a truncated HMAC of it, short enough to live in an address's local part (≤ 64 octets:
 * `unsubscribe+msg_<26>.<16 hex>` is 59). Using it suppresses the address for that inbox, cancels
 * what is queued to it from there, and records a message.unsubscribed event.
 */
const SETTING = 'unsubscribe_secret';
const TOKEN = /^(msg_[0-9a-z]{26})\.([0-9a-f]{16})$/;
const MAILTO = /^unsubscribe\+(msg_[0-9a-z]{26}\.[0-9a-f]{16})@([^@\s]+)$/i;

export class Unsubscribe {
  readonly #db: Kysely<Database>;
  #secret: Buffer | null = null;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  /** The signing secret, created once per database (shared by every process). */
  async #key(): Promise<Buffer> {
    if (this.#secret) return this.#secret;
    await this.#db.insertInto('settings').values({ key: SETTING, value: JSON.stringify(randomBytes(32).toString('hex')) })
      .onConflict((oc) => oc.column('key').doNothing()).execute();
    const row = await this.#db.selectFrom('settings').select('value').where('key', '=', SETTING).executeTakeFirstOrThrow();
    this.#secret = Buffer.from(String(row.value), 'hex');
    return this.#secret;
  }

  async token(messageId: string): Promise<string> {
    return `${messageId}.${createHmac('sha256', await this.#key()).update(messageId).digest('hex').slice(0, 16)}`;
  }

  /** The message id a token was made for, or null when it is not one of ours. */
  async verify(token: string): Promise<string | null> {
    const m = TOKEN.exec(token);
    if (!m) return null;
    const expected = Buffer.from((await this.token(m[1])).slice(-16));
    return timingSafeEqual(expected, Buffer.from(m[2])) ? m[1] : null;
  }

  async headers(messageId: string, domain: string, publicUrl: string): Promise<Record<string, string>> {
    const t = await this.token(messageId);
    return {
      'List-Unsubscribe': `<${publicUrl}/unsubscribe/${t}>, <mailto:unsubscribe+${t}@${domain}>`,
      'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
    };
  }

  /**
   * Applies a token: suppresses the message's recipient for its inbox. Idempotent. Returns false for
   * a token that is not valid (or names no message of ours).
   */
  async apply(token: string, via: 'one-click' | 'mailto', now = new Date()): Promise<boolean> {
    const messageId = await this.verify(token);
    if (!messageId) return false;
    return this.#db.transaction().execute(async (trx) => {
      const o = await trx.selectFrom('outbound').innerJoin('messages', 'messages.id', 'outbound.id')
        .select(['outbound.id', 'outbound.inbox_id', 'outbound.trace_id', 'messages.thread_id']).where('outbound.id', '=', messageId).executeTakeFirst();
      const rcpt = o && await trx.selectFrom('outbound_recipients').select('address').where('message_id', '=', messageId).executeTakeFirst();
      if (!o || !rcpt) return false;
      const existing = await trx.selectFrom('suppressions').select('id').where('address', '=', rcpt.address.toLowerCase())
        .where('scope', '=', 'inbox').where('scope_value', '=', o.inbox_id.toLowerCase()).executeTakeFirst();
      if (existing) return true;
      const [eventId] = await appendEvents(trx, [{ type: 'message.unsubscribed', inbox_id: o.inbox_id, message_id: o.id, thread_id: o.thread_id, trace_id: o.trace_id, data: { recipient: rcpt.address, via } }], now);
      await addSuppression(trx, { address: rcpt.address, scope: 'inbox', scopeValue: o.inbox_id, reason: 'unsubscribe', detail: `unsubscribed (${via})`, sourceEventId: eventId }, now);
      return true;
    });
  }
}

/** The token of an `unsubscribe+<token>@domain` address and the message it names, or null. */
export function parseUnsubscribeAddress(address: string): { token: string; messageId: string } | null {
  const token = MAILTO.exec(address.trim())?.[1].toLowerCase();
  return token ? { token, messageId: token.slice(0, token.indexOf('.')) } : null;
}
