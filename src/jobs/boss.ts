import { PgBoss, fromKysely, fromPglite, type Db } from 'pg-boss';
import type { Kysely } from 'kysely';
import type { Store } from '../store/database.ts';

/** Queue names, in one place so producers and workers cannot drift apart. */
export const QUEUES = {
  /** Parse an accepted receipt into messages. Data: { receipt_id }. */
  ingest: 'inbound-ingest',
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
        // process: the acknowledged message it was parsing is invisible until then. Default 60 s.
        superviseIntervalSeconds: 10,
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
  }).catch((err) => {
    // Two processes starting together on PostgreSQL may both try to create it.
    if (!/already exists/i.test(String(err?.message))) throw err;
  });
  return boss;
}

/** A pg-boss database handle that runs inside a Kysely transaction: jobs commit with the rows. */
export const inTransaction = (trx: Kysely<any>): Db => fromKysely(trx);
