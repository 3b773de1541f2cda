import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GroupCommit } from '../src/store/group-commit.ts';

/** A write that holds its first call until `release()`: the callers after it queue behind it. */
function slowFirstWrite<O>(write: (items: number[]) => O[]) {
  const writes: number[][] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => { release = r; });
  const run = async (items: number[]) => {
    writes.push(items);
    if (writes.length === 1) await gate;
    return write(items);
  };
  return { writes, release, run };
}

/** store/group-commit.ts: what the send API and the send worker rely on, without a database. */
describe('group commit', () => {
  test('callers arriving while a group is written share the next write; each gets its own result', async () => {
    const { writes, release, run } = slowFirstWrite((items) => items.map((i) => i * 10));
    const g = new GroupCommit<number, number>(run, { maxGroup: 100, maxInflight: 1 });
    const first = g.submit(1);
    const rest = [2, 3, 4, 5].map((i) => g.submit(i));
    release();
    assert.deepEqual(await Promise.all([first, ...rest]), [10, 20, 30, 40, 50]);
    assert.deepEqual(writes, [[1], [2, 3, 4, 5]]);
  });

  test('maxGroup caps a group and maxInflight the groups written at once', async () => {
    let running = 0;
    let most = 0;
    const sizes: number[] = [];
    const g = new GroupCommit<number, number>(async (items) => {
      running++;
      most = Math.max(most, running);
      sizes.push(items.length);
      await new Promise((r) => setTimeout(r, 5));
      running--;
      return items;
    }, { maxGroup: 3, maxInflight: 2 });
    const out = await Promise.all(Array.from({ length: 10 }, (_, i) => g.submit(i)));
    assert.deepEqual(out, Array.from({ length: 10 }, (_, i) => i));
    assert.ok(sizes.every((n) => n <= 3), `group sizes ${sizes}`);
    assert.equal(most, 2);
  });

  test('an Error in the results reaches only its caller', async () => {
    const g = new GroupCommit<number, number>(async (items) => items.map((i) => (i === 2 ? new Error('two refused') : i)), { maxGroup: 10, maxInflight: 1 });
    const results = await Promise.allSettled([1, 2, 3].map((i) => g.submit(i)));
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);
    assert.equal((results[1] as PromiseRejectedResult).reason.message, 'two refused');
  });

  test('a group whose write throws is written again one item at a time: only the bad item fails', async () => {
    const { writes, release, run } = slowFirstWrite((items) => {
      if (items.includes(13)) throw new Error('the database refused 13');
      return items;
    });
    const g = new GroupCommit<number, number>(run, { maxGroup: 10, maxInflight: 1 });
    const first = g.submit(0);
    const rest = [11, 12, 13, 14].map((i) => g.submit(i));
    release();
    const results = await Promise.allSettled([first, ...rest]);
    assert.deepEqual(results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message)), [0, 11, 12, 'the database refused 13', 14]);
    assert.deepEqual(writes, [[0], [11, 12, 13, 14], [11], [12], [13], [14]]);
  });
});
