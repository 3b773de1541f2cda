import type { ChangeNotices, ChangeTopic } from './change-notices.ts';

/**
 * A bounded cache of rows that every request reads, correct whoever changes them:
 * - embedded (`notices` null), the process is the database's sole writer (the data-dir lock) and
 *   every change goes through code that calls `forget` first;
 * - on PostgreSQL, other processes change rows too, and their change notices (change-notices.ts)
 *   call `forget` here. While notices may be missed the cache neither answers nor keeps anything.
 *
 * The race a notice alone leaves open: a request reads the old row, another process commits a
 * change, its notice arrives (nothing cached yet to forget), then the request stores the old row.
 * So a fill takes a `stamp()` before it reads and `set` keeps the row only if no notice (and no
 * interruption) came in between; otherwise the next request reads again.
 */
export class SharedCache<V> {
  readonly #entries = new Map<string, V>();
  readonly #max: number;
  readonly #notices: ChangeNotices | null;
  readonly #idOf: (v: V) => string;

  constructor(opts: { max: number; notices: ChangeNotices | null; topic: ChangeTopic; idOf: (v: V) => string }) {
    this.#max = opts.max;
    this.#notices = opts.notices;
    this.#idOf = opts.idOf;
    opts.notices?.subscribe({
      changed: (topic, id) => { if (topic === opts.topic) this.forget(id); },
      reset: () => this.#entries.clear(),
    });
  }

  get(key: string): V | undefined {
    if (this.#notices && !this.#notices.live) return undefined;
    return this.#entries.get(key);
  }

  /** Taken before reading the row from the database; passed to `set`. */
  stamp(): number {
    return this.#notices?.epoch ?? 0;
  }

  set(key: string, value: V, stamp: number): void {
    if (this.#notices && (!this.#notices.live || this.#notices.epoch !== stamp)) return;
    // Bounded: the oldest entry goes first (Map keeps insertion order).
    if (!this.#entries.has(key) && this.#entries.size >= this.#max) this.#entries.delete(this.#entries.keys().next().value!);
    this.#entries.set(key, value);
  }

  /** Drops every entry of the row `id` (the key may be something else: a token is looked up by hash). */
  forget(id: string): void {
    if (this.#entries.has(id) && this.#idOf(this.#entries.get(id)!) === id) {
      this.#entries.delete(id);
      return;
    }
    for (const [key, v] of this.#entries) if (this.#idOf(v) === id) this.#entries.delete(key);
  }

  get size(): number {
    return this.#entries.size;
  }
}
