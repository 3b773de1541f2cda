import { PgBoss, fromKysely, fromPglite, type Db } from 'pg-boss';
import { PREPARE_MARK } from '../store/prepared.ts';
import { sql, type Kysely } from 'kysely';
import type { Logger } from '../log.ts';
import type { Store } from '../store/database.ts';

/** Queue names, in one place so producers and workers cannot drift apart. */
export const QUEUES = {
  /** Parse an accepted receipt into messages. Data: { receipt_id }. */
  ingest: 'inbound-ingest',
  /** Deliver one outbound message to its recipients. Data: { message_id }. */
  send: 'outbound-send',
  /** Apply received reports (DSNs, complaints) to the sends they are about. Data: { message_ids }. */
  report: 'outbound-report',
  /** Advance one campaign run (orchestrator/engine.ts). Data: { run_id }. */
  campaign: 'campaign-run',
  /** Send one approved draft at its time (drafts/drafts.ts). Data: { draft_id }. */
  draft: 'draft-send',
} as const;

/** Where pg-boss keeps its tables: `pgboss` embedded and beside `public`, else `<schema>_pgboss`. */
export const bossSchemaFor = (schema: string | null): string => (schema === null || schema === 'public' ? 'pgboss' : `${schema}_pgboss`);

/**
 * pg-boss on whichever engine the store runs: through its `fromPglite` adapter in embedded mode,
 * through its own pool on PostgreSQL (where any number of processes share the queues).
 */
export async function startBoss(store: Store, onError: (err: Error) => void): Promise<PgBoss> {
  const boss = store.pglite
    ? new PgBoss({ db: fromPglite(store.pglite as any), backend: 'pglite', schema: bossSchemaFor(null), supervise: true })
    : new PgBoss({
        connectionString: store.postgres!.connectionString,
        schema: bossSchemaFor(store.postgres!.schema),
        max: 4,
        // How soon a job whose worker process died (its heartbeat stopped) is retried by another
        // process: the acknowledged message it was parsing is invisible until then. pg-boss fails
        // such a job in its per-queue monitor pass, so both intervals matter (defaults 60 s each;
        // bench:patterns measured ~1 min to recover a dead worker's runs with the monitor's).
        superviseIntervalSeconds: 10,
        monitorIntervalSeconds: 10,
      });
  boss.on('error', onError);
  await boss.start();
  await boss.createQueue(QUEUES.ingest, {
    retryLimit: 10,
    retryDelay: 5,
    retryBackoff: true,
    retryDelayMax: 600,
    // A parse that takes longer than this is stuck (a MIME bomb the limits missed); the job is
    // retried and, after retryLimit, kept as failed for an operator: the raw stays stored.
    expireInSeconds: 300,
  }).catch(ignoreExisting);
  await boss.createQueue(QUEUES.send, {
    // These retries are for a worker that crashed or threw unexpectedly; remote temporary failures
    // (4xx, timeouts) are rescheduled by the send job itself, with its own backoff and lifetime.
    retryLimit: 20,
    retryDelay: 10,
    retryBackoff: true,
    retryDelayMax: 900,
    expireInSeconds: 900,
  }).catch(ignoreExisting);
  // Campaign runs: the queue jobs went to before coordination patterns, and one per role plus the
  // centralized orchestrator's (orchestrator/patterns.ts; names written out here because jobs/
  // comes before orchestrator/). Retries are for a worker that crashed or threw unexpectedly;
  // agent failures are retried by the run itself (its own backoff, then the dead-letter state).
  for (const name of [QUEUES.campaign, 'campaign-research', 'campaign-personalize', 'campaign-sequence', 'campaign-send', 'campaign-orchestrator']) {
    await boss.createQueue(name, { retryLimit: 20, retryDelay: 5, retryBackoff: true, retryDelayMax: 600, expireInSeconds: 900 }).catch(ignoreExisting);
  }
  // An approved draft's send: a failure here is the outbox refusing or the database gone; the
  // outbox's idempotency key (draft:<id>) makes a retry after a crash a replay, not a second send.
  await boss.createQueue(QUEUES.draft, { retryLimit: 10, retryDelay: 5, retryBackoff: true, retryDelayMax: 600, expireInSeconds: 300 }).catch(ignoreExisting);
  await boss.createQueue(QUEUES.report, { retryLimit: 10, retryDelay: 10, retryBackoff: true, retryDelayMax: 600, expireInSeconds: 300 }).catch(ignoreExisting);
  return boss;
}

// Two processes starting together on PostgreSQL may both try to create a queue.
function ignoreExisting(err: unknown): void {
  if (!/already exists/i.test(String((err as Error)?.message))) throw err;
}

/** A pg-boss database handle that runs inside a Kysely transaction: jobs commit with the rows. */
export const inTransaction = (trx: Kysely<any>): Db => fromKysely(trx);

/**
 * `inTransaction` for a hot call site whose pg-boss statements have a fixed text (one queue, the
 * same options every time): on PostgreSQL they run as named prepared statements (store/prepared.ts),
 * planned once per connection. The accept's ingest-job insert uses it: every PostgreSQL `250`
 * waits for it.
 */
export const inTransactionPrepared = (trx: Kysely<any>): Db => {
  const db = fromKysely(trx);
  return { executeSql: (text, values) => db.executeSql(PREPARE_MARK + text, values) };
};

/**
 * Embedded mode only, before a queue's worker starts. A job that was `active` when the previous
 * process died (kill -9, OOM, power cut) stays claimed until its expireInSeconds runs out and a
 * supervise pass notices, so messages already acknowledged stayed unparsed (or unsent) for minutes
 * after a restart (found by test/crash.test.ts, D3). The data-dir lock makes this the only process
 * on the database, so every job of the queue still active now is such an orphan: fail it, and
 * pg-boss retries it under the queue's retry policy (the jobs are idempotent).
 */
export async function retryOrphanedJobs(store: Store, boss: PgBoss, log: Logger, queue: string): Promise<void> {
  // pg-boss has no call that lists active jobs: read its job table.
  const { rows } = await sql<{ id: string }>`SELECT id FROM ${sql.table(`${bossSchemaFor(null)}.job`)} WHERE name = ${queue} AND state = 'active'`.execute(store.db);
  if (!rows.length) return;
  await boss.fail(queue, rows.map((r) => r.id), { message: 'the process running this job stopped before finishing it' });
  log.info({ queue, count: rows.length }, 'retrying jobs left active by a process that stopped');
}
