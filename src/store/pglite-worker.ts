import { parentPort, workerData } from 'node:worker_threads';
import { PGlite } from '@electric-sql/pglite';

/**
 * The embedded database's thread. PGlite is PostgreSQL compiled to WASM and runs synchronously on
 * whichever thread calls it; on the main thread every statement (and its synchronous file I/O)
 * held up SMTP and HTTP. Here it has a thread of its own, driven by messages from
 * `pglite-thread.ts`. One PGlite instance, as before: its own lock still serialises transactions.
 */
type Request =
  | { id: number; op: 'query'; sql: string; params?: unknown[]; opts?: object; tx?: number }
  | { id: number; op: 'exec'; sql: string; tx?: number }
  | { id: number; op: 'begin' | 'commit' | 'rollback'; tx: number }
  | { id: number; op: 'listen' | 'unlisten'; channel: string }
  | { id: number; op: 'close' };

interface OpenTx {
  tx: { query: PGlite['query']; exec: PGlite['exec'] };
  end: (commit: boolean) => void;
  done: Promise<unknown>;
}

const port = parentPort!;
const db = workerData.dir ? new PGlite(workerData.dir) : new PGlite();
const txs = new Map<number, OpenTx>();
const listeners = new Map<string, () => Promise<void>>();

// Errors cross the thread as plain objects: structured clone would drop PostgreSQL's fields (code, constraint…).
const serialize = (err: unknown) => {
  const e = err as Record<string, unknown> & Error;
  return { ...e, message: e?.message ?? String(err), name: e?.name ?? 'Error' };
};

async function handle(m: Request): Promise<unknown> {
  switch (m.op) {
    case 'query': {
      const target = m.tx ? txs.get(m.tx)!.tx : db;
      const r = await target.query(m.sql, m.params, m.opts as any);
      return { rows: r.rows, affectedRows: r.affectedRows, fields: r.fields };
    }
    case 'exec': {
      const target = m.tx ? txs.get(m.tx)!.tx : db;
      return (await target.exec(m.sql)).map((r) => ({ rows: r.rows, affectedRows: r.affectedRows, fields: r.fields }));
    }
    case 'begin':
      return new Promise<void>((begun, failed) => {
        let end!: (commit: boolean) => void;
        const finished = new Promise<boolean>((resolve) => { end = resolve; });
        const done = db.transaction(async (tx) => {
          txs.set(m.tx, { tx, end, done });
          begun();
          if (!(await finished)) await tx.rollback();
        });
        done.catch(failed);
      });
    case 'commit':
    case 'rollback': {
      const open = txs.get(m.tx);
      if (!open) return null;
      open.end(m.op === 'commit');
      try {
        await open.done;
      } finally {
        txs.delete(m.tx);
      }
      return null;
    }
    case 'listen': {
      const unsubscribe = await db.listen(m.channel, (payload) => port.postMessage({ notify: m.channel, payload }));
      listeners.set(m.channel, unsubscribe);
      return null;
    }
    case 'unlisten':
      await listeners.get(m.channel)?.();
      listeners.delete(m.channel);
      return null;
    case 'close':
      await db.close();
      return null;
  }
}

port.on('message', (m: Request) => {
  handle(m).then(
    (result) => port.postMessage({ id: m.id, result }),
    (err) => port.postMessage({ id: m.id, error: serialize(err) }),
  );
});
await db.waitReady;
port.postMessage({ ready: true });
