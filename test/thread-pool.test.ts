import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ThreadPool } from '../src/threads/pool.ts';

/**
 * serveTasks (threads/serve.ts) on a real worker thread: side by side by default (tasks that wait
 * on I/O, the inbound analyzer's DNS lookups, overlap their waits), one after another when asked
 * (send preparation: all CPU, so a burst's first task finishes after its own work, not the burst's).
 */
type Ran = { i: number; start: number; end: number };

async function burst(oneAtATime: boolean, tasks: number[]): Promise<PromiseSettledResult<Ran>[]> {
  const pool = new ThreadPool<number, Ran>({ url: new URL('./fixtures/timed-task-worker.ts', import.meta.url), workerData: { oneAtATime }, threads: 1, name: 'timed tasks' });
  try {
    return await Promise.allSettled(tasks.map((i) => pool.run(i)));
  } finally {
    await pool.close();
  }
}

describe('worker thread tasks', () => {
  test('oneAtATime: a burst runs in the order posted, each task after the previous one ended, a failure included', async () => {
    const settled = await burst(true, [0, 1, -2, 3, 4]);
    assert.equal(settled[2].status, 'rejected');
    assert.match(String((settled[2] as PromiseRejectedResult).reason), /task -2 refused/);
    const ran = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    assert.deepEqual(ran.map((r) => r.i), [0, 1, 3, 4]);
    // The refused task held its turn too: 3 started at least one task's wait after 1 ended.
    for (let k = 1; k < ran.length; k++) assert.ok(ran[k].start >= ran[k - 1].end, `task ${ran[k].i} started before ${ran[k - 1].i} ended`);
    assert.ok(ran[2].start - ran[1].end >= 15, 'the refused task ran between 1 and 3');
  });

  test('by default the tasks of a burst run side by side: their waits overlap', async () => {
    const ran = (await burst(false, [0, 1, 2, 3])).map((s) => (s as PromiseFulfilledResult<Ran>).value);
    // Every task started before the first one ended.
    const firstEnd = Math.min(...ran.map((r) => r.end));
    assert.ok(ran.every((r) => r.start < firstEnd), JSON.stringify(ran));
  });
});
