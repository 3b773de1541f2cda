/**
 * Cursor pagination. A `Page` is one response (`data`, `next_cursor`); iterating it with
 * `for await` walks every item of this page and of all the pages after it, fetching them as
 * needed. `list()` methods return a `PagePromise`: await it for the first page, or `for await`
 * it directly for every item.
 */

export interface PageBody<T> {
  data: T[];
  next_cursor?: string | null;
}

export type PageFetcher<T> = (cursor: string | undefined) => Promise<PageBody<T>>;

export class Page<T> implements AsyncIterable<T> {
  readonly data: T[];
  readonly next_cursor: string | null;
  readonly #fetchPage: PageFetcher<T>;

  constructor(body: PageBody<T>, fetchPage: PageFetcher<T>) {
    this.data = body.data;
    this.next_cursor = body.next_cursor ?? null;
    this.#fetchPage = fetchPage;
  }

  hasNextPage(): boolean {
    return this.next_cursor !== null;
  }

  /** The page after this one, or null at the end. */
  async nextPage(): Promise<Page<T> | null> {
    if (this.next_cursor === null) return null;
    return new Page(await this.#fetchPage(this.next_cursor), this.#fetchPage);
  }

  /** Every page from this one on. */
  async *pages(): AsyncGenerator<Page<T>, void, undefined> {
    let page: Page<T> | null = this;
    const seen = new Set<string>();
    while (page) {
      yield page;
      // A server that handed out the same cursor twice would otherwise loop forever.
      if (page.next_cursor !== null) {
        if (seen.has(page.next_cursor)) return;
        seen.add(page.next_cursor);
      }
      page = await page.nextPage();
    }
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    for await (const page of this.pages()) yield* page.data;
  }
}

export class PagePromise<T> implements Promise<Page<T>>, AsyncIterable<T> {
  readonly [Symbol.toStringTag] = 'PagePromise';
  readonly #fetchPage: PageFetcher<T>;
  #first: Promise<Page<T>> | null = null;

  constructor(fetchPage: PageFetcher<T>) {
    this.#fetchPage = fetchPage;
  }

  #page(): Promise<Page<T>> {
    this.#first ??= this.#fetchPage(undefined).then((body) => new Page(body, this.#fetchPage));
    return this.#first;
  }

  then<R1 = Page<T>, R2 = never>(
    onfulfilled?: ((value: Page<T>) => R1 | PromiseLike<R1>) | null,
    onrejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2> {
    return this.#page().then(onfulfilled, onrejected);
  }

  catch<R = never>(onrejected?: ((reason: unknown) => R | PromiseLike<R>) | null): Promise<Page<T> | R> {
    return this.#page().catch(onrejected);
  }

  finally(onfinally?: (() => void) | null): Promise<Page<T>> {
    return this.#page().finally(onfinally);
  }

  /** Every item of every page, fetched as the iteration goes. */
  async *[Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    yield* await this.#page();
  }

  /** Every item, collected (at most `max`, default unlimited). */
  async toArray(max = Infinity): Promise<T[]> {
    const out: T[] = [];
    if (max <= 0) return out;
    for await (const item of this) {
      out.push(item);
      if (out.length >= max) break;
    }
    return out;
  }
}
