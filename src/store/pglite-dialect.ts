import {
  CompiledQuery, PGliteAdapter, PostgresIntrospector, PostgresQueryCompiler,
  type DatabaseConnection, type Dialect, type Driver, type Kysely, type QueryCompiler, type QueryResult,
} from 'kysely';
import type { PGliteThread } from './pglite-thread.ts';

/**
 * Kysely over the embedded database's thread (pglite-thread.ts), with as many connections as
 * callers. Why not Kysely's PGliteDialect: it has one connection behind a mutex, so a statement is
 * sent to the thread only after the previous one has come back *and* the main thread has had a turn
 * to notice — under load each of those turns waits behind HTTP parsing and DKIM signing, and a
 * send group's five reads cost five such waits (about 7 ms each at 150 sends/s, bench/README.md).
 * Here every connection posts its statements at once; PGlite itself keeps them apart (a statement
 * outside a transaction waits for the open transaction to end, as on the one connection before),
 * so concurrent reads reach the thread together and come back together.
 */
export class PGliteThreadDialect implements Dialect {
  readonly #thread: PGliteThread;

  constructor(thread: PGliteThread) {
    this.#thread = thread;
  }

  createAdapter() {
    return new ThreadAdapter();
  }

  createDriver(): Driver {
    return new ThreadDriver(this.#thread);
  }

  createIntrospector(db: Kysely<any>) {
    return new PostgresIntrospector(db);
  }

  createQueryCompiler(): QueryCompiler {
    return new PostgresQueryCompiler();
  }
}

/** PGlite's adapter (no migration lock: the data-dir lock keeps every other process out), without the one-connection mutex. */
class ThreadAdapter extends PGliteAdapter {
  override get supportsMultipleConnections(): boolean {
    return true;
  }
}

class ThreadDriver implements Driver {
  readonly #thread: PGliteThread;

  constructor(thread: PGliteThread) {
    this.#thread = thread;
  }

  async init(): Promise<void> {
    await this.#thread.waitReady;
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    return new ThreadConnection(this.#thread);
  }

  async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await (connection as ThreadConnection).begin();
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await (connection as ThreadConnection).end(true);
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await (connection as ThreadConnection).end(false);
  }

  async releaseConnection(): Promise<void> {}

  async destroy(): Promise<void> {
    await this.#thread.close();
  }

  async savepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`savepoint "${name}"`));
  }

  async rollbackToSavepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`rollback to "${name}"`));
  }

  async releaseSavepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`release "${name}"`));
  }
}

class ThreadConnection implements DatabaseConnection {
  readonly #thread: PGliteThread;
  #tx: number | undefined;

  constructor(thread: PGliteThread) {
    this.#thread = thread;
  }

  async begin(): Promise<void> {
    this.#tx = await this.#thread.begin();
  }

  async end(commit: boolean): Promise<void> {
    const tx = this.#tx;
    this.#tx = undefined;
    if (tx !== undefined) await this.#thread.end(tx, commit);
  }

  async executeQuery<R>(q: CompiledQuery): Promise<QueryResult<R>> {
    const r = await this.#thread.query<R>(q.sql, q.parameters as unknown[], { rowMode: 'object' }, this.#tx);
    return { numAffectedRows: r.affectedRows != null ? BigInt(r.affectedRows) : undefined, rows: r.rows ?? [] };
  }

  // eslint-disable-next-line require-yield
  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('streaming is not supported on the embedded database');
  }
}
