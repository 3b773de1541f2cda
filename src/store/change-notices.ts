import { randomUUID } from 'node:crypto';
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

const CHANNEL_SQL = `'mailroom_changes_' || md5(current_schema())`;
const CHANNEL = sql.raw<string>(CHANNEL_SQL);

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

export interface ListenerTiming {
  /** How often the listener sends itself a notice to prove notices still arrive. */
  heartbeatMs: number;
  /** How long it waits for that notice before treating the connection as lost. */
  heartbeatTimeoutMs: number;
}

const DEFAULT_TIMING: ListenerTiming = { heartbeatMs: 5_000, heartbeatTimeoutMs: 5_000 };

/**
 * The listening side: one connection of its own (a pooled one would drop LISTEN when released).
 *
 * A heartbeat proves, every few seconds, that a notice sent now comes back: a connection can die
 * without a word (a half-open TCP connection after a network partition), and behind a pooler in
 * transaction mode (PgBouncer) LISTEN "succeeds" on a server connection that is then handed to
 * someone else. Either way notices stop arriving while nothing reports an error, and the caches
 * would serve stale rows; when the heartbeat's own notice does not come back in time, the
 * connection is treated as lost (caches off and emptied) and a new one is made.
 */
export class ChangeListener implements ChangeNotices {
  readonly #connection: { connectionString: string; schema: string };
  readonly #log: Logger;
  readonly #timing: ListenerTiming;
  readonly #subscribers: { changed: (topic: ChangeTopic, id: string) => void; reset: () => void }[] = [];
  #client: pg.Client | null = null;
  #epoch = 0;
  #live = false;
  #closed = false;
  #retryMs = RECONNECT_MIN_MS;
  #timer: NodeJS.Timeout | null = null;
  #heartbeat: NodeJS.Timeout | null = null;
  /** The heartbeat notice awaited, and what to do when it arrives. */
  #ping: { payload: string; arrived: () => void } | null = null;

  constructor(connection: { connectionString: string; schema: string }, log: Logger, timing: Partial<ListenerTiming> = {}) {
    this.#connection = connection;
    this.#log = log;
    this.#timing = { ...DEFAULT_TIMING, ...timing };
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
      // A connect or a statement into silence gives up, so the next attempt can be made.
      connectionTimeoutMillis: this.#timing.heartbeatTimeoutMs,
      query_timeout: this.#timing.heartbeatTimeoutMs,
    });
    client.on('error', () => this.#lost(client));
    client.on('end', () => this.#lost(client));
    this.#client = client;
    await client.connect();
    const channel = (await client.query<{ channel: string }>(`SELECT ${CHANNEL_SQL} AS channel`)).rows[0].channel;
    client.on('notification', (n) => {
      if (n.channel !== channel || !n.payload) return;
      if (n.payload.startsWith('ping:')) {
        if (this.#ping?.payload === n.payload) this.#ping.arrived();
        return;
      }
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
    this.#heartbeat = setInterval(() => this.#beat(client, channel), this.#timing.heartbeatMs);
    this.#heartbeat.unref();
  }

  #beat(client: pg.Client, channel: string): void {
    if (this.#ping || this.#client !== client) return;
    const payload = `ping:${randomUUID()}`;
    const timeout = setTimeout(() => {
      this.#ping = null;
      this.#log.warn('change notices: the heartbeat notice did not come back; reconnecting (caches off meanwhile)');
      this.#lost(client);
    }, this.#timing.heartbeatTimeoutMs);
    timeout.unref();
    this.#ping = { payload, arrived: () => { clearTimeout(timeout); this.#ping = null; } };
    // Sent through the listening connection itself: PostgreSQL delivers a session's own notices to it.
    client.query('SELECT pg_notify($1, $2)', [channel, payload]).catch(() => {});
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
    this.#stopHeartbeat();
    // A silent connection may never answer a goodbye: close the socket outright.
    destroySocket(client);
    client.end().catch(() => {});
    if (!this.#closed) {
      this.#log.warn('change notices: the listening connection was lost; caches of tokens and inboxes are off until it is back');
      this.#retry();
    }
  }

  #stopHeartbeat(): void {
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#heartbeat = null;
    this.#ping = null;
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
    this.#stopHeartbeat();
    if (this.#timer) clearTimeout(this.#timer);
    const client = this.#client;
    this.#client = null;
    if (!client) return;
    // A goodbye to a silent server would wait forever: a second at most, then the socket goes.
    const bounded = setTimeout(() => destroySocket(client), 1_000);
    await client.end().catch(() => {});
    clearTimeout(bounded);
  }
}

/** node-postgres has no public way to drop a connection without the protocol's goodbye. */
const destroySocket = (client: pg.Client) => (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
