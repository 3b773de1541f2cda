/**
 * Group commit: callers that arrive while a group is being written wait and are written together
 * in the next one, so N concurrent requests share a few transactions instead of paying N. No timer:
 * a lone caller is written at once; under load, groups grow by themselves to whatever arrived
 * during the previous commit (up to `maxGroup`).
 *
 * `write` answers each item of a group with its result or an Error of its own (that item's caller
 * gets it; the others are unaffected). If `write` throws for the whole group, every item is written
 * again alone, so one item the database refuses fails alone and the others still succeed — the
 * inbound acceptor (inbound/accept.ts) treats its groups the same way.
 */
export interface GroupCommitOptions {
  /** Items per group at most. */
  maxGroup: number;
  /** Groups written at once (separate connections on PostgreSQL; PGlite has one and queues them). */
  maxInflight: number;
}

interface Waiting<I, O> { item: I; resolve: (o: O) => void; reject: (e: Error) => void }

export class GroupCommit<I, O> {
  readonly #write: (items: I[]) => Promise<(O | Error)[]>;
  readonly #opts: GroupCommitOptions;
  #queue: Waiting<I, O>[] = [];
  #inflight = 0;

  constructor(write: (items: I[]) => Promise<(O | Error)[]>, opts: GroupCommitOptions) {
    this.#write = write;
    this.#opts = opts;
  }

  submit(item: I): Promise<O> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ item, resolve, reject });
      this.#pump();
    });
  }

  #pump(): void {
    while (this.#inflight < this.#opts.maxInflight && this.#queue.length) {
      const group = this.#queue.splice(0, this.#opts.maxGroup);
      this.#inflight++;
      void this.#run(group).finally(() => {
        this.#inflight--;
        this.#pump();
      });
    }
  }

  async #run(group: Waiting<I, O>[]): Promise<void> {
    let results: (O | Error)[];
    try {
      results = await this.#write(group.map((w) => w.item));
    } catch (err) {
      if (group.length === 1) return group[0].reject(err as Error);
      // Alone, each item's own fault (if any) reaches only its caller.
      for (const w of group) await this.#run([w]);
      return;
    }
    group.forEach((w, i) => {
      const r = results[i];
      if (r instanceof Error) w.reject(r);
      else w.resolve(r);
    });
  }
}
