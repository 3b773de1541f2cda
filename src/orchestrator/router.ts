import { sql, type Kysely } from 'kysely';
import type { PgBoss } from 'pg-boss';
import { EventFeed, type EventView } from '../events/feed.ts';
import type { EventTail } from '../events/tail.ts';
import type { Logger } from '../log.ts';
import type { Database } from '../store/schema.ts';
import { runsForEvents, wakeRuns } from './store.ts';
import { orchestratorDb } from './tables.ts';

/**
 * Events drive campaigns: a reply, a bounce, a complaint or a suppression wakes the runs it
 * concerns within a second, whatever timer they were waiting on. The router reads the event log
 * from its own cursor (kept in `settings`), maps each event to runs (by the outbound message, the
 * thread, the sender's address or company, the suppressed address) and gives those runs a job that
 * starts now — the cursor moves in the same transaction, so a crash repeats nothing and skips
 * nothing. Like the webhook fan-out, one process at a time routes (a try-lock); the run jobs
 * themselves go to whichever process fetches them.
 *
 * The router only wakes. What a run does is decided by the run from the store (engine.ts), so a
 * wake-up that turns out to be irrelevant costs one job and changes nothing.
 */
export const ROUTED_TYPES = [
  'message.received', 'message.quarantined', 'message.released',
  'message.sent', 'message.bounced', 'message.failed', 'message.complained', 'message.suppressed', 'message.unsubscribed',
  // A person approved or rejected a run's step draft: the run waiting for it goes on.
  'draft.approved', 'draft.rejected',
];

const CURSOR_KEY = 'campaign_router_cursor';
const PAGE = 500;

export interface RouterOptions {
  db: Kysely<Database>;
  boss: PgBoss;
  tail: EventTail;
  log: Logger;
  /** Called after runs were woken, so this process's worker fetches them at once. */
  onWake?: () => void;
  tickMs?: number;
}

export class CampaignRouter {
  readonly #o: RouterOptions;
  #timer: NodeJS.Timeout | null = null;
  #unsubscribe: (() => void) | null = null;
  #running: Promise<void> | null = null;
  #again = false;
  #stopped = false;

  constructor(o: RouterOptions) {
    this.#o = o;
  }

  start(): void {
    this.#timer = setInterval(() => this.wake(), this.#o.tickMs ?? 2_000);
    this.#timer.unref();
    this.wake();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#unsubscribe?.();
    await this.#running;
  }

  wake(): void {
    if (this.#stopped) return;
    if (this.#running) { this.#again = true; return; }
    this.#running = (async () => {
      do {
        this.#again = false;
        try {
          await this.#pass();
        } catch (err) {
          this.#o.log.warn({ err }, 'campaign routing pass failed; retrying on the next tick');
        }
      } while (this.#again && !this.#stopped);
    })().finally(() => { this.#running = null; });
  }

  async #pass(): Promise<void> {
    const odb = orchestratorDb(this.#o.db);
    const live = await odb.selectFrom('campaign_runs').select('id').where('status', 'in', ['active', 'waiting']).limit(1).executeTakeFirst();
    // Listen to the log only while some run can be woken: no cost for a server without campaigns.
    if (live && !this.#unsubscribe) this.#unsubscribe = this.#o.tail.subscribe(() => this.wake());
    if (!live) {
      this.#unsubscribe?.();
      this.#unsubscribe = null;
    }
    const woken = await this.#o.db.transaction().execute(async (trx) => {
      const { rows } = await sql<{ ok: boolean }>`SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || '.campaign-router')) AS ok`.execute(trx);
      if (!rows[0]?.ok) return 0;
      const cursor = await readCursor(trx);
      if (cursor === undefined) return 0; // no campaign yet (createCampaign sets the cursor)
      const feed = new EventFeed(trx);
      let at = cursor;
      let count = 0;
      for (let pages = 0; pages < 10; pages++) {
        const page = await feed.read(null, { after: at, types: ROUTED_TYPES, limit: PAGE });
        if (page.data.length) {
          const keys = routeKeys(page.data);
          count += (await wakeRuns(trx, this.#o.boss, await runsForEvents(trx, keys))).length;
          // A message leaving the outbox matters only to a run waiting for exactly that (stage
          // sequence): waking a run that is busy would make it redo the step it is on.
          count += (await wakeRuns(trx, this.#o.boss, await runsForEvents(trx, { outboundIds: keys.sentIds, threadIds: [], senders: [], suppressed: [] }), { waitingIn: 'sequence' })).length;
          count += (await wakeRuns(trx, this.#o.boss, keys.draftRuns, { waitingIn: 'send' })).length;
        }
        if (page.next_cursor) at = page.next_cursor;
        if (page.data.length < PAGE) break;
      }
      if (at && at !== cursor) await writeCursor(trx, at);
      return count;
    });
    if (woken) this.#o.onWake?.();
  }
}

/** What in each event can name a run: the outbound message, the thread, the sender, a suppressed address. */
function routeKeys(events: EventView[]) {
  const sentIds: string[] = [];
  const outboundIds: string[] = [];
  const threadIds: string[] = [];
  const senders: { inboxId: string; address: string }[] = [];
  const suppressed: string[] = [];
  const draftRuns: string[] = [];
  for (const e of events) {
    if (e.type === 'draft.approved' || e.type === 'draft.rejected') {
      if (typeof e.data.run_id === 'string') draftRuns.push(e.data.run_id);
    } else if (e.type === 'message.sent') {
      if (e.message_id) sentIds.push(e.message_id);
    } else if (['message.received', 'message.quarantined', 'message.released'].includes(e.type)) {
      if (e.thread_id) threadIds.push(e.thread_id);
      const from = typeof e.data.from === 'string' ? e.data.from : null;
      if (from && e.inbox_id) senders.push({ inboxId: e.inbox_id, address: from });
    } else {
      if (e.message_id) outboundIds.push(e.message_id);
      const recipient = typeof e.data.recipient === 'string' ? e.data.recipient : typeof e.data.address === 'string' ? e.data.address : null;
      if (recipient) suppressed.push(recipient);
    }
  }
  return { outboundIds, threadIds, senders, suppressed, sentIds, draftRuns };
}

async function readCursor(db: Kysely<Database>): Promise<string | null | undefined> {
  const row = await db.selectFrom('settings').select('value').where('key', '=', CURSOR_KEY).executeTakeFirst();
  return row ? (row.value as string | null) : undefined;
}

async function writeCursor(db: Kysely<Database>, cursor: string): Promise<void> {
  await db.updateTable('settings').set({ value: JSON.stringify(cursor) }).where('key', '=', CURSOR_KEY).execute();
}

/**
 * Called in the transaction that creates a campaign: the router starts at the head of the log the
 * first time, since no earlier event can concern a run that did not exist.
 */
export async function ensureRouterCursor(trx: Kysely<Database>): Promise<void> {
  const head = await new EventFeed(trx).head();
  await trx.insertInto('settings').values({ key: CURSOR_KEY, value: JSON.stringify(head) })
    .onConflict((oc) => oc.column('key').doNothing()).execute();
}
