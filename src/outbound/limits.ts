import { sql, type Kysely, type Selectable } from 'kysely';
import { MailroomError, notFound } from '../errors.ts';
import { newId } from '../ids.ts';
import { bulkInsert } from '../store/bulk.ts';
import type { Database, RatePolicyTable } from '../store/schema.ts';
import { domainOf } from './addresses.ts';

/**
 * Shared sending limits. A policy caps recipient sends per window for one scope — the whole server
 * (`global`), a sending inbox, a sending domain, or a recipient domain (gmail.com…) — for one key
 * or for each key separately (`match: '*'`). A domain policy may carry a warm-up schedule: daily
 * caps for the first days after the domain was added.
 *
 * Enforcement is a sliding window kept in the database: every admitted recipient send is a usage
 * row, and admission counts the rows in the window under an advisory lock per (policy, key), in the
 * transaction that marks the recipient `sending`, by the database's clock (the processes' clocks
 * may differ). So the budget is shared by every agent, token and process, and is exact: never more
 * than `max` in any window. Excess is never dropped; the
 * recipient waits until the oldest send in the window leaves it.
 *
 * A window is widened by a small guard (10 %, at most 1 s) when admitting: the limit holds for
 * arrivals at the remote server too, despite the jitter of delivering what was admitted.
 *
 * A send still in flight counts as happening now, however long ago it was admitted: its usage row
 * is dated IN_FLIGHT_MS ahead until the remote answer re-dates it (`settle`). Dated at admission,
 * a delivery slower than the window (a loaded machine, a slow MX) left the window before it
 * arrived, and the next sends were let in beside it (seen as 11 in a 10-per-window test under
 * load). A send whose worker died is re-dated to its retry (`restart`), so a crash does not hold
 * the budget for IN_FLIGHT_MS.
 */
type Policy = Selectable<RatePolicyTable>;
export type LimitScope = Policy['scope'];

export interface Sender { inboxId: string; domain: string; domainCreatedAt: Date | null }
export interface Unit { id: string; address: string }
/** A recipient send asking for admission: whose it is (the sender's windows) and which message it belongs to. */
export interface SenderUnit extends Unit { sender: Sender; messageId: string }

export interface PolicyView {
  id: string;
  scope: LimitScope;
  match: string;
  max: number;
  window_seconds: number;
  warmup: number[] | null;
  created_at: string;
  usage: { key: string; used: number; limit: number; remaining: number; resets_at: string | null }[];
}

const WINDOWS: Record<string, number> = { minute: 60, hour: 3600, day: 86400 };
/** How long an unanswered send counts as in flight: the send job's own expiry (jobs/boss.ts, 900 s) bounds a network step. */
const IN_FLIGHT_MS = 900_000;
/** The share of admissions that also delete the usage rows that left their window. */
const PRUNE_EVERY = 1 / 20;
const guardMs = (p: Policy) => Math.min(p.window_seconds * 100, 1000);
const spanMs = (p: Policy) => p.window_seconds * 1000 + guardMs(p);

function keyFor(p: Policy, s: Sender, rcptDomain: string): string | null {
  const value = p.scope === 'global' ? '' : p.scope === 'inbox' ? s.inboxId : p.scope === 'domain' ? s.domain : rcptDomain;
  return p.scope === 'global' || p.match === '*' || p.match === value ? value : null;
}

/** The cap in force: a warm-up day's cap for a new sending domain, else the policy's max. */
function capOf(p: Policy, s: Sender, now: Date): number {
  const warmup = p.warmup as number[] | null;
  if (!warmup?.length || p.scope !== 'domain' || !s.domainCreatedAt) return p.max;
  const day = Math.floor((now.getTime() - new Date(s.domainCreatedAt).getTime()) / 86_400_000);
  return day < warmup.length ? Math.min(warmup[day], p.max) : p.max;
}

/** The (policy, key) windows each unit draws on, keyed `policy id \n key`, with how many units draw on each and the sender of the first. */
function windowsOf(policies: Policy[], units: SenderUnit[]) {
  const pairs = new Map<string, { p: Policy; key: string; n: number; sender: Sender }>();
  const pairsOf = new Map<string, string[]>();
  for (const u of units) {
    const ids: string[] = [];
    for (const p of policies) {
      const key = keyFor(p, u.sender, domainOf(u.address));
      if (key === null) continue;
      const id = `${p.id}\n${key}`;
      const pair = pairs.get(id);
      if (pair) pair.n++;
      else pairs.set(id, { p, key, n: 1, sender: u.sender });
      ids.push(id);
    }
    pairsOf.set(u.id, ids);
  }
  return { pairs, pairsOf };
}

/** The usage rows of one window (policy, key) as of `now`. */
const inWindow = (db: Kysely<Database>, p: Policy, key: string, now: Date) =>
  db.selectFrom('rate_usage').where('policy_id', '=', p.id).where('key', '=', key).where('at', '>', new Date(now.getTime() - spanMs(p)));

/** How many sends the window holds (a count, not the rows: at hundreds a second it holds tens of thousands). */
const usedIn = async (db: Kysely<Database>, p: Policy, key: string, now: Date) =>
  Number((await inWindow(db, p, key, now).select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);

/** When the window has room for one more once `skip` of its oldest sends have left it. */
async function freeAt(db: Kysely<Database>, p: Policy, key: string, now: Date, skip: number): Promise<number> {
  const row = await inWindow(db, p, key, now).select('at').orderBy('at').offset(Math.max(0, skip)).limit(1).executeTakeFirst();
  // A send in flight (dated ahead) frees its slot a span after its answer, which is now at the earliest.
  return (row ? Math.min(new Date(row.at).getTime(), now.getTime()) : now.getTime()) + spanMs(p);
}

/** The database's clock: every process dates and counts usage rows by it (Limits.admit). */
async function databaseNow(db: Kysely<Database>): Promise<Date> {
  const { rows } = await sql<{ now: Date | string }>`SELECT clock_timestamp() AS now`.execute(db);
  return new Date(rows[0].now);
}

export class Limits {
  readonly #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async create(input: { scope: LimitScope; match?: string; max: number; window?: string; window_seconds?: number; warmup?: number[] }): Promise<PolicyView> {
    const window = input.window_seconds ?? (input.window ? WINDOWS[input.window] : undefined);
    if (!window) throw new MailroomError('invalid_request', 'window must be minute, hour or day (or window_seconds a positive number)');
    if (input.warmup && (input.scope !== 'domain' || window !== 86400)) throw new MailroomError('invalid_request', 'a warm-up schedule is a daily cap of a sending domain: scope domain, window day');
    const match = input.scope === 'global' ? '*' : (input.match ?? '*').toLowerCase();
    const row = await this.#db.insertInto('rate_policies').values({
      id: newId('lim'), scope: input.scope, match, max: input.max, window_seconds: window,
      warmup: input.warmup ? JSON.stringify(input.warmup) : null, created_at: new Date(),
    }).returningAll().executeTakeFirstOrThrow();
    return (await this.list([row.id]))[0];
  }

  async delete(id: string): Promise<void> {
    const r = await this.#db.deleteFrom('rate_policies').where('id', '=', id).executeTakeFirst();
    if (!Number(r.numDeletedRows)) throw notFound('limit');
  }

  /** Policies with their current usage per key (the keys with sends in the window). */
  async list(ids?: string[]): Promise<PolicyView[]> {
    let q = this.#db.selectFrom('rate_policies').selectAll().orderBy('id');
    if (ids) q = q.where('id', 'in', ids);
    const policies = await q.execute();
    const now = Date.now();
    const out: PolicyView[] = [];
    for (const p of policies) {
      const usage = await this.#db.selectFrom('rate_usage')
        .select(['key', (eb) => eb.fn.countAll<string>().as('used'), (eb) => eb.fn.min('at').as('oldest')])
        .where('policy_id', '=', p.id).where('at', '>', new Date(now - p.window_seconds * 1000)).groupBy('key').orderBy('key').execute();
      out.push({
        id: p.id, scope: p.scope, match: p.match, max: p.max, window_seconds: p.window_seconds, warmup: p.warmup as number[] | null,
        created_at: new Date(p.created_at).toISOString(),
        usage: usage.map((u) => ({
          key: u.key, used: Number(u.used), limit: p.max, remaining: Math.max(0, p.max - Number(u.used)),
          // A send still in flight (dated ahead) counts from now.
          resets_at: u.oldest ? new Date(Math.min(new Date(u.oldest as Date).getTime(), now) + p.window_seconds * 1000).toISOString() : null,
        })),
      });
    }
    return out;
  }

  /**
   * Admits what the budgets allow, in the caller's transaction, recording a usage row per policy
   * for each admitted recipient. The rest get `at`: when every window blocking them has freed a slot.
   * Takes the units of many messages at once (the send worker admits a batch of jobs in one
   * transaction): each lock is taken and each window counted once for the whole batch.
   */
  async admit<U extends SenderUnit>(trx: Kysely<Database>, units: U[]): Promise<{ admitted: U[]; blocked: (U & { at: Date })[]; admittedAt: Date }> {
    if (!units.length) return { admitted: units, blocked: [], admittedAt: new Date() };
    const policies = await trx.selectFrom('rate_policies').selectAll().execute();
    if (!policies.length) return { admitted: units, blocked: [], admittedAt: new Date() };
    const { pairs, pairsOf } = windowsOf(policies, units);
    if (!pairs.size) return { admitted: units, blocked: [], admittedAt: new Date() };
    // Serialise admission per (policy, key) across processes; sorted, so two admissions never deadlock.
    const lockKeys = [...pairs.keys()].sort();
    await sql`SELECT pg_advisory_xact_lock(hashtext(x)) FROM unnest(${lockKeys}::text[]) AS x ORDER BY x`.execute(trx);
    // The clock is read once the locks are held: a time taken before waiting for them would date
    // this admission earlier than it happened and let the next one in too soon. And it is the
    // database's clock, as in settle and restart: usage rows written by one process are counted by
    // another, and a process whose clock ran ahead saw the others' recent sends as older than they
    // were and let more in (test/limits.test.ts, L7).
    const now = await databaseNow(trx);
    const state = new Map<string, { used: number; cap: number }>();
    // One statement at a time: a transaction's connection takes no concurrent queries (node-postgres
    // deprecates queueing them, and removes it in pg 9).
    for (const [id, { p, key, sender }] of pairs) state.set(id, { used: await usedIn(trx, p, key, now), cap: capOf(p, sender, now) });
    const admitted: U[] = [];
    const blocked: (U & { at: Date })[] = [];
    for (const u of units) {
      const ids = pairsOf.get(u.id)!;
      const full = ids.filter((id) => state.get(id)!.used >= state.get(id)!.cap);
      if (!full.length) {
        for (const id of ids) state.get(id)!.used++;
        admitted.push(u);
        continue;
      }
      // Due when every full window has freed a slot. Sends admitted in this call are `now`, so a
      // slot they hold frees at now + span at the earliest.
      // The window of `id` has room when its (used - cap + 1)-th oldest send leaves it.
      let at = now.getTime();
      for (const id of full) {
        const { p, key } = pairs.get(id)!;
        const st = state.get(id)!;
        at = Math.max(at, st.cap > 0 ? await freeAt(trx, p, key, now, st.used - st.cap) : now.getTime() + spanMs(p));
      }
      blocked.push({ ...u, at: new Date(at) });
    }
    // In flight until settled: dated ahead so that no window lets it go before its answer (above).
    const inFlight = new Date(now.getTime() + IN_FLIGHT_MS);
    const rows = admitted.flatMap((u) => pairsOf.get(u.id)!.map((id) => ({ policy_id: pairs.get(id)!.p.id, key: pairs.get(id)!.key, at: inFlight, message_id: u.messageId })));
    // One JSON parameter for the batch's usage rows (store/bulk.ts).
    await bulkInsert(trx, 'rate_usage', rows);
    // Rows that left the window are of no use to anyone: prune the keys just touched, now and then
    // (every admission would add a statement per policy to every send for rows that cost nothing
    // to keep a while: the window queries are bounded by the index on (policy, key, at)).
    if (Math.random() < PRUNE_EVERY) for (const { p, key } of pairs.values()) {
      await trx.deleteFrom('rate_usage').where('policy_id', '=', p.id).where('key', '=', key).where('at', '<=', new Date(now.getTime() - spanMs(p))).execute();
    }
    return { admitted, blocked, admittedAt: inFlight };
  }

  /**
   * After the remote server answered: the admitted sends are dated by that answer (the database's
   * clock as it is recorded), not by their admission, so a window counts real send times however
   * long the transport took.
   */
  async settle(trx: Kysely<Database>, messageIds: string[], admittedAt: Date): Promise<void> {
    if (!messageIds.length) return;
    await trx.updateTable('rate_usage').set({ at: sql<Date>`clock_timestamp()` }).where('message_id', 'in', messageIds).where('at', '=', admittedAt).execute();
  }

  /**
   * Before the sends of these messages that a dead worker left in flight are tried again: their
   * earlier attempt is dated now (it may have reached the remote server at any moment up to now),
   * instead of holding the budget as in flight until IN_FLIGHT_MS passes.
   */
  async restart(trx: Kysely<Database>, messageIds: string[]): Promise<void> {
    if (!messageIds.length) return;
    await trx.updateTable('rate_usage').set({ at: sql<Date>`clock_timestamp()` }).where('message_id', 'in', messageIds).where('at', '>', sql<Date>`clock_timestamp()`).execute();
  }

  /**
   * Without consuming anything: when would a send's recipients be admitted (null = now)? For a
   * send's `scheduled_at` and its job's start. Reads what predicting these sends needs (the
   * policies, then one count for every window any of their recipients draws on) and answers a
   * function that predicts a send from it, reading again only for a full window (when does its
   * slot free?). A send group calls this beside its other reads, before it knows which recipients
   * are suppressed, then predicts each send for the rest: a count read for a recipient dropped
   * later is one row more in a statement it makes anyway.
   */
  async predictor(sends: { sender: Sender; addresses: string[] }[], now: Date): Promise<(sender: Sender, addresses: string[]) => Promise<Date | null>> {
    const policies = await this.#db.selectFrom('rate_policies').selectAll().execute();
    if (!policies.length) return async () => null;
    const used = new Map<string, Promise<number>>();
    const count = (id: string, p: Policy, key: string) => {
      if (!used.has(id)) used.set(id, usedIn(this.#db, p, key, now));
      return used.get(id)!;
    };
    const { pairs: all } = windowsOf(policies, sends.flatMap(({ sender, addresses }) => addresses.map((address) => ({ id: '', address, sender, messageId: '' }))));
    await Promise.all([...all].map(([id, { p, key }]) => count(id, p, key)));
    return async (sender, addresses) => {
      let at: number | null = null;
      const { pairs } = windowsOf(policies, addresses.map((address, i) => ({ id: String(i), address, sender, messageId: '' })));
      for (const [id, { p, key, n }] of pairs) {
        const u = await count(id, p, key);
        const cap = capOf(p, sender, now);
        if (u + n <= cap) continue;
        // The last of these n recipients goes when the (used + n - cap)-th oldest send leaves the window.
        const t = cap > 0 ? await freeAt(this.#db, p, key, now, u + n - cap - 1) : now.getTime() + spanMs(p);
        at = Math.max(at ?? 0, t);
      }
      return at === null ? null : new Date(at);
    };
  }
}
