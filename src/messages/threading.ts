import { sql, type Kysely } from 'kysely';
import { newId } from '../ids.ts';
import { bulkInsert } from '../store/bulk.ts';
import type { Database } from '../store/schema.ts';

/**
 * Threads group the messages of one inbox that reference each other (RFC 5322 References and
 * In-Reply-To). Every Message-ID a thread has seen — its messages' own ids and every id they
 * reference — is kept in `thread_refs`, so a reply finds its thread with one indexed lookup, and a
 * parent that arrives after its reply joins the reply's thread (the reply listed the parent's id).
 * Messages Mailroom sends register their Message-ID the same way, so replies to them thread too.
 *
 * Resolution runs for a whole batch at once (one lookup, bulk writes): ingest throughput on the
 * embedded engine is bounded by statements, not rows.
 */
export interface ThreadCandidate {
  /** Key of the message being placed (its id). */
  key: string;
  inboxId: string;
  subject: string | null;
  at: Date;
  ownId: string | null;
  parents: string[];
}

export async function assignThreads(trx: Kysely<Database>, items: ThreadCandidate[]): Promise<Map<string, string>> {
  const result = new Map<string, string>();
  if (!items.length) return result;
  const inboxIds = [...new Set(items.map((i) => i.inboxId))];
  const allRefs = [...new Set(items.flatMap((i) => [...i.parents, ...(i.ownId ? [i.ownId] : [])]))];
  // Serialise thread resolution per inbox across processes (PostgreSQL mode): without it two
  // workers could each open a new thread for two halves of one conversation. Sorted to avoid deadlock.
  await sql`SELECT pg_advisory_xact_lock(hashtext(x)) FROM unnest(${[...inboxIds].sort()}::text[]) AS x ORDER BY x`.execute(trx);
  const known = new Map<string, string>(); // `${inbox}\n${ref}` → thread id
  if (allRefs.length) {
    const rows = await trx
      .selectFrom('thread_refs')
      .select(['inbox_id', 'ref', 'thread_id'])
      .where('inbox_id', 'in', inboxIds)
      .where('ref', 'in', allRefs)
      .execute();
    for (const r of rows) known.set(`${r.inbox_id}\n${r.ref}`, r.thread_id);
  }
  const newThreads = new Map<string, { id: string; inbox_id: string; subject: string | null; first: Date; last: Date; count: number }>();
  const counts = new Map<string, { n: number; first: Date; last: Date }>();
  const refRows: { inbox_id: string; ref: string; thread_id: string }[] = [];

  for (const it of items) {
    const keys = [...it.parents, ...(it.ownId ? [it.ownId] : [])].map((r) => `${it.inboxId}\n${r}`);
    let threadId = keys.map((k) => known.get(k)).find(Boolean);
    if (!threadId) {
      threadId = newId('thr');
      newThreads.set(threadId, { id: threadId, inbox_id: it.inboxId, subject: it.subject, first: it.at, last: it.at, count: 0 });
    }
    for (const k of keys) {
      if (!known.has(k)) {
        known.set(k, threadId);
        refRows.push({ inbox_id: it.inboxId, ref: k.slice(k.indexOf('\n') + 1), thread_id: threadId });
      }
    }
    const c = counts.get(threadId) ?? { n: 0, first: it.at, last: it.at };
    c.n++;
    if (it.at < c.first) c.first = it.at;
    if (it.at > c.last) c.last = it.at;
    counts.set(threadId, c);
    result.set(it.key, threadId);
  }

  if (newThreads.size) {
    const now = new Date();
    // A new thread is inserted with its count and time span; only threads that existed get the UPDATE below.
    const rows = [...newThreads.values()].map((t) => {
      const c = counts.get(t.id)!;
      return { id: t.id, inbox_id: t.inbox_id, subject: t.subject, message_count: c.n, first_message_at: c.first, last_message_at: c.last, created_at: now };
    });
    // One JSON parameter per statement rather than one bind parameter per value (store/bulk.ts).
    await bulkInsert(trx, 'threads', rows);
  }
  await bulkInsert(trx, 'thread_refs', refRows, { onConflictDoNothing: ['inbox_id', 'ref'] });
  // One statement updates every existing thread's count and time span.
  const values = [...counts.entries()].filter(([id]) => !newThreads.has(id))
    .map(([id, c]) => sql`(${id}, ${c.n}::int, ${c.first.toISOString()}::timestamptz, ${c.last.toISOString()}::timestamptz)`);
  if (values.length) await sql`
    UPDATE threads AS t SET
      message_count = t.message_count + v.n,
      first_message_at = LEAST(t.first_message_at, v.first),
      last_message_at = GREATEST(t.last_message_at, v.last)
    FROM (VALUES ${sql.join(values)}) AS v(id, n, first, last)
    WHERE t.id = v.id`.execute(trx);
  return result;
}

/**
 * New conversations started by messages Mailroom composes itself (sends that are not replies):
 * their threads and thread_refs rows, for the send group to insert with its other rows (store/bulk.ts
 * `bulkInsertAll`). Their Message-IDs were just generated, so nothing can reference them yet and
 * there is nothing to look up: the threads are created without `assignThreads`'s per-inbox lock,
 * which otherwise made every send of one inbox wait for the previous send's commit
 * (bench/outbound.ts on PostgreSQL). The thread ids are in the order of `items`.
 */
export function newThreads(items: { inboxId: string; subject: string | null; at: Date; ownId: string }[]) {
  const ids = items.map(() => newId('thr'));
  return {
    ids,
    threads: items.map((t, i) => ({
      id: ids[i], inbox_id: t.inboxId, subject: t.subject, message_count: 1, first_message_at: t.at, last_message_at: t.at, created_at: t.at,
    })),
    refs: items.map((t, i) => ({ inbox_id: t.inboxId, ref: t.ownId, thread_id: ids[i] })),
  };
}
