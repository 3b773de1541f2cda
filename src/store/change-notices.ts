import pg from 'pg';
import { sql, type RawBuilder } from 'kysely';
import type { Logger } from '../log.ts';

/**
 * Notices of changed rows between the processes that share one PostgreSQL database, so each may
 * cache rows that every request reads (tokens, inboxes) and still see a revocation or a deletion
 * made by another: the statement that changes a row also selects `changeNotice(…)`, PostgreSQL
 * delivers the NOTIFY when (and only if) its transaction commits, and every process LISTENing —
 * the writer too — drops the entry (shared-cache.ts).
 *
 * The channel is named after the schema (`current_schema()` of the writing connection, which
 * Mailroom's search_path sets), so Mailroom installs sharing one database but not one schema do not
 * hear each other. On PGlite nobody listens and the NOTIFY costs nothing: there the process is the
 * sole writer and invalidates its caches directly.
 *
 * Why not a time-to-live: a revoked token would keep working for that long on every other process.
 * A notice arrives within a round trip of the commit; the remaining race (a row read before the
 * commit, kept after the notice) is closed by the epoch: see SharedCache.
 */
export type ChangeTopic = 'token' | 'inbox';

const CHANNEL = sql<string>`'mailroom_changes_' || md5(current_schema())`;

/** Select this in the statement that changes the row: `pg_notify` is transactional. */
export const changeNotice = (topic: ChangeTopic, id: RawBuilder<string> | string) => sql<string>`pg_notify(${CHANNEL}, ${topic} || ':' || ${id})`;

export interface ChangeNotices {
  /**
   * Grows with every notice heard and every interruption: a cache fill that read the database under
   * one epoch and would store under another may have read a row that changed meanwhile.
   */
  readonly epoch: number;
  /** False while notices may be missed (the listening connection is down or not yet listening). */
  readonly live: boolean;
  /** `changed` for every notice; `reset` whenever notices may have been missed (forget everything). */
  subscribe(s: { changed: (topic: ChangeTopic, id: string) => void; reset: () => void }): void;
  close(): Promise<void>;
}

const RECONNECT_MIN_MS = 250;
const RECONNECT_MAX_MS = 10_000;

/** The listening side: one connection of its own (a pooled one would drop LISTEN when released). */
export class ChangeListener implements ChangeNotices {
  readonly #connection: { connectionString: string; schema: string };
  readonly #log: Logger;
  readonly #subscribers: { changed: (topic: ChangeTopic, id: string) => void; reset: () => void }[] = [];
  #client: pg.Client | null = null;
  #epoch = 0;
  #live = false;
  #closed = false;
  #retryMs = RECONNECT_MIN_MS;
  #timer: NodeJS.Timeout | null = null;

  constructor(connection: { connectionString: string; schema: string }, log: Logger) {
    this.#connection = connection;
    this.#log = log;
  }

  get epoch(): number {
    return this.#epoch;
  }

  get live(): boolean {
    return this.#live;
  }

  subscribe(s: { changed: (topic: ChangeTopic, id: string) => void; reset: () => void }): void {
    this.#subscribers.push(s);
  }

  /** Connects and listens; if that fails, keeps trying in the background (caches stay off meanwhile). */
  async start(): Promise<void> {
    try {
      await this.#listen();
    } catch (err) {
      this.#log.warn({ err }, 'change notices: cannot listen yet; caches of tokens and inboxes are off until it can');
      this.#retry();
    }
  }

  async #listen(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.#connection.connectionString,
      options: `-c search_path="${this.#connection.schema}"`,
      // Named, so an operator (or a test) can tell this connection apart in pg_stat_activity.
      application_name: 'mailroom-change-notices',
    });
    client.on('error', () => this.#lost(client));
    client.on('end', () => this.#lost(client));
    this.#client = client;
    await client.connect();
    const channel = (await client.query<{ channel: string }>(`SELECT 'mailroom_changes_' || md5(current_schema()) AS channel`)).rows[0].channel;
    client.on('notification', (n) => {
      if (n.channel !== channel || !n.payload) return;
      this.#epoch++;
      const at = n.payload.indexOf(':');
      const topic = n.payload.slice(0, at) as ChangeTopic;
      const id = n.payload.slice(at + 1);
      for (const s of this.#subscribers) s.changed(topic, id);
    });
    await client.query(`LISTEN "${channel}"`);
    if (this.#client !== client || this.#closed) return;
    // Whatever changed before LISTEN took effect was not heard: start from empty caches.
    this.#forgetAll();
    this.#live = true;
    this.#retryMs = RECONNECT_MIN_MS;
  }

  #forgetAll(): void {
    this.#epoch++;
    for (const s of this.#subscribers) s.reset();
  }

  #lost(client: pg.Client): void {
    if (this.#client !== client) return;
    this.#client = null;
    this.#live = false;
    this.#forgetAll();
    client.end().catch(() => {});
    if (!this.#closed) {
      this.#log.warn('change notices: the listening connection was lost; caches of tokens and inboxes are off until it is back');
      this.#retry();
    }
  }

  #retry(): void {
    if (this.#closed || this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#listen().catch((err) => {
        this.#log.debug({ err }, 'change notices: listening failed again');
        const client = this.#client;
        if (client) this.#lost(client);
        else this.#retry();
      });
    }, this.#retryMs);
    this.#retryMs = Math.min(this.#retryMs * 2, RECONNECT_MAX_MS);
    this.#timer.unref();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#live = false;
    if (this.#timer) clearTimeout(this.#timer);
    const client = this.#client;
    this.#client = null;
    await client?.end().catch(() => {});
  }
}
