import { sql, type Kysely, type Selectable } from 'kysely';
import { appendEvents } from '../events/events.ts';
import { EVENT_COLUMNS, EventFeed, toEventView } from '../events/feed.ts';
import type { EventTail } from '../events/tail.ts';
import type { Logger } from '../log.ts';
import type { Database, WebhookDeliveryTable, WebhookTable } from '../store/schema.ts';
import { postPinned } from './http.ts';
import { signedHeaders } from './signing.ts';
import { queueDeliveries } from './webhooks.ts';
import { resolveWebhookTarget, type AllowList, type Lookup } from './ssrf.ts';

/**
 * Turns the event log into webhook deliveries and makes them, at least once.
 *
 * Fan-out: each enabled endpoint has a cursor in the log; events after it that match its filters
 * become delivery rows and the cursor moves, in one transaction, so a crash repeats nothing and
 * skips nothing. One process at a time fans out (a try-lock: the others just deliver).
 *
 * Delivery: due rows are claimed with a lease (next_attempt_at pushed past the attempt's timeout)
 * under SKIP LOCKED, so any number of processes share the work and a process that dies mid-attempt
 * only delays the row until the lease ends. Each attempt is freshly signed with the same
 * webhook-id. Failures back off exponentially with jitter; a delivery still failing after the retry
 * window fails for good and disables its endpoint (webhook.disabled), whose deliveries stay visible
 * and replayable.
 */
export interface DispatcherOptions {
  db: Kysely<Database>;
  tail: EventTail;
  lookup: Lookup;
  allow: AllowList;
  timeoutMs: number;
  retryHours: number;
  retryBaseSeconds: number;
  log: Logger;
  /** How often due retries are looked for (new events also wake the dispatcher through the tail). */
  tickMs?: number;
}

const BATCH = 20;
const MAX_BACKOFF_MS = 3_600_000;

type Delivery = Selectable<WebhookDeliveryTable>;
type Webhook = Selectable<WebhookTable>;

export class WebhookDispatcher {
  readonly #o: DispatcherOptions;
  #timer: NodeJS.Timeout | null = null;
  #unsubscribe: (() => void) | null = null;
  #running: Promise<void> | null = null;
  #again = false;
  #stopped = false;

  constructor(o: DispatcherOptions) {
    this.#o = o;
  }

  start(): void {
    this.#timer = setInterval(() => this.wake(), this.#o.tickMs ?? 1000);
    this.wake();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#unsubscribe?.();
    await this.#running;
  }

  /** Runs a pass now, or right after the one in progress. */
  wake(): void {
    if (this.#stopped) return;
    if (this.#running) { this.#again = true; return; }
    this.#running = (async () => {
      do {
        this.#again = false;
        try {
          await this.#pass();
        } catch (err) {
          this.#o.log.warn({ err }, 'webhook dispatch pass failed; retrying on the next tick');
        }
      } while (this.#again && !this.#stopped);
    })().finally(() => { this.#running = null; });
  }

  async #pass(): Promise<void> {
    const any = await this.#o.db.selectFrom('webhooks').select('id').where('enabled', '=', true).limit(1).executeTakeFirst();
    // Listen to the tail only while some endpoint wants events: no polling cost for those without.
    if (any && !this.#unsubscribe) this.#unsubscribe = this.#o.tail.subscribe(() => this.wake());
    if (!any) { this.#unsubscribe?.(); this.#unsubscribe = null; return; }
    await this.#fanOut();
    for (;;) {
      const claimed = await this.#claim();
      if (!claimed.length || this.#stopped) break;
      // One read of the batch's endpoints (the claim only took rows of enabled ones).
      const ids = [...new Set(claimed.map((d) => d.webhook_id))];
      const hooks = new Map((await this.#o.db.selectFrom('webhooks').selectAll().where('id', 'in', ids).execute()).map((w) => [w.id, w]));
      await Promise.all(claimed.map((d) => this.#attempt(d, hooks.get(d.webhook_id))));
      if (claimed.length < BATCH) break;
    }
  }

  async #fanOut(): Promise<void> {
    await this.#o.db.transaction().execute(async (trx) => {
      // Keyed by schema: several Mailrooms may share one PostgreSQL database in different schemas.
      const { rows } = await sql<{ ok: boolean }>`SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || '.webhook-fanout')) AS ok`.execute(trx);
      if (!rows[0]?.ok) return;
      const feed = new EventFeed(trx);
      const hooks = await trx.selectFrom('webhooks').selectAll().where('enabled', '=', true).execute();
      for (const w of hooks) {
        let cursor = w.cursor;
        for (let pages = 0; pages < 10; pages++) {
          const page = await feed.read(null, { after: cursor, types: w.event_types, limit: 500 });
          await queueDeliveries(trx, w, page.data, 'new');
          if (page.next_cursor) cursor = page.next_cursor;
          if (page.data.length < 500) break;
        }
        if (cursor !== w.cursor) await trx.updateTable('webhooks').set({ cursor }).where('id', '=', w.id).execute();
      }
    });
  }

  async #claim(): Promise<Delivery[]> {
    const leaseMs = this.#o.timeoutMs + 30_000;
    const { rows } = await sql<Delivery>`
      UPDATE webhook_deliveries SET next_attempt_at = now() + ${`${leaseMs} milliseconds`}::interval
      WHERE id IN (
        SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
        WHERE d.status = 'pending' AND w.enabled AND d.next_attempt_at <= now()
        ORDER BY d.next_attempt_at LIMIT ${BATCH}
        FOR UPDATE OF d SKIP LOCKED)
      RETURNING *`.execute(this.#o.db);
    return rows;
  }

  async #attempt(d: Delivery, w: Webhook | undefined): Promise<void> {
    const db = this.#o.db;
    if (!w || !w.enabled) return; // deleted or disabled meanwhile: the row waits (or went with it)
    const event = await db.selectFrom('events')
      .select(EVENT_COLUMNS)
      .where('id', '=', d.event_id).executeTakeFirst();
    if (!event) {
      await db.updateTable('webhook_deliveries').set({ status: 'failed', last_error: 'the event is past retention' }).where('id', '=', d.id).execute();
      return;
    }
    const view = toEventView(event);
    const body = JSON.stringify({ type: view.type, timestamp: view.created_at, data: view });
    const secrets = [w.secret, ...(w.previous_secret && w.previous_secret_expires_at && w.previous_secret_expires_at > new Date() ? [w.previous_secret] : [])];
    const started = Date.now();
    let status: number | null = null;
    let error: string | null = null;
    try {
      // Resolved and judged again at every attempt, and the connection pinned to what was judged:
      // a name that passed at registration and now points inside is refused (DNS rebinding).
      const target = await resolveWebhookTarget(w.url, { lookup: this.#o.lookup, allow: this.#o.allow });
      const res = await postPinned(target, { headers: signedHeaders(secrets, d.id, body), body, timeoutMs: this.#o.timeoutMs });
      status = res.status;
      if (status < 200 || status > 299) error = `HTTP ${status}`;
    } catch (err) {
      error = (err as { code?: string }).code ? `${(err as { code: string }).code}: ${(err as Error).message}` : (err as Error).message;
    }
    const durationMs = Date.now() - started;
    const now = new Date();
    const attempts = d.attempts + 1;
    // The receiver's response body is never read into logs or rows: it may echo secrets back.
    this.#o.log.info({ webhook: w.id, delivery: d.id, event: d.event_id, attempt: attempts, status, error, durationMs }, 'webhook delivery attempt');
    await db.transaction().execute(async (trx) => {
      await trx.insertInto('webhook_attempts').values({ delivery_id: d.id, at: now, status, error: error?.slice(0, 500) ?? null, duration_ms: durationMs }).execute();
      // The outcome is this claim's only while nobody re-queued the row meanwhile: a replay during
      // the attempt resets it (a new created_at), and must still deliver it again afterwards.
      const claimed = trx.updateTable('webhook_deliveries').where('id', '=', d.id).where('created_at', '=', d.created_at);
      if (!error) {
        await claimed.set({ status: 'succeeded', attempts, last_attempt_at: now, last_status: status, last_error: null, delivered_at: now, next_attempt_at: null }).execute();
        return;
      }
      const expired = now.getTime() - d.created_at.getTime() >= this.#o.retryHours * 3_600_000;
      if (!expired) {
        await claimed.set({ attempts, last_attempt_at: now, last_status: status, last_error: error.slice(0, 500), next_attempt_at: new Date(now.getTime() + this.#backoff(attempts)) }).execute();
        return;
      }
      const failed = await claimed.set({ status: 'failed', attempts, last_attempt_at: now, last_status: status, last_error: error.slice(0, 500), next_attempt_at: null }).executeTakeFirst();
      if (!Number(failed.numUpdatedRows)) return;
      const reason = `a delivery kept failing for ${this.#o.retryHours} h (last: ${error.slice(0, 200)})`;
      const disabled = await trx.updateTable('webhooks').set({ enabled: false, disabled_reason: reason, updated_at: now }).where('id', '=', w.id).where('enabled', '=', true).executeTakeFirst();
      if (Number(disabled.numUpdatedRows)) await appendEvents(trx, [{ type: 'webhook.disabled', data: { webhook_id: w.id, url: w.url, reason } }], now);
    });
  }

  /** base · 2^(n−1), ±20 % jitter so endpoints that failed together do not retry together. */
  #backoff(attempts: number): number {
    const ms = Math.min(this.#o.retryBaseSeconds * 1000 * 2 ** (attempts - 1), MAX_BACKOFF_MS);
    return Math.round(ms * (0.8 + Math.random() * 0.4));
  }
}

