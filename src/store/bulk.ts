import { sql, type Kysely } from 'kysely';
import { PREPARE_MARK } from './prepared.ts';
import type { Database } from './schema.ts';

/**
 * Bulk inserts with one parameter: the rows as a JSON array, expanded by PostgreSQL with
 * `jsonb_populate_recordset(NULL::table, $1)`, i.e. typed by the table's own row type.
 *
 * Why: ingest writes batches of up to 100 messages, and a multi-row `VALUES` insert binds one
 * parameter per column per row — 3,000 for the messages of a batch. On the embedded engine every
 * one of them is encoded by PGlite's JavaScript protocol writer and parsed and coerced in WASM,
 * and the main thread compiles and copies the 3,000-placeholder statement to the database thread
 * for every batch. One JSON string is serialised natively, crosses the thread as one string, and
 * is parsed once: the messages insert cost about 15 % less database-thread CPU per row (160 → 135 µs
 * on this repository's 2-core machine, bench/README.md), and the statement text is the same for
 * every batch. Same statement on PostgreSQL, where the fixed text also lets it run as a named
 * prepared statement (prepared.ts).
 *
 * `json`: columns whose values are already serialised JSON (the jsonb columns analysis prepared,
 * analyze.ts): spliced in as they are instead of being quoted as strings. Dates become ISO strings,
 * which the row type casts back. Columns not named in the rows keep their defaults.
 */
export interface BulkOptions {
  /** Columns whose values are JSON text (or null), spliced in unquoted. */
  json?: readonly string[];
  /** ON CONFLICT (these columns) DO NOTHING. */
  onConflictDoNothing?: readonly string[];
}

/** A payload above this many characters is split over several statements (jsonb holds at most 256 MB). */
const MAX_PAYLOAD_CHARS = 8 * 1024 * 1024;

/**
 * Inserts `rows` into `table`. `returning: 'id'` answers the ids inserted, `'*'` the rows as stored
 * (defaults filled, types as a SELECT reads them), so a caller can answer from what it wrote
 * without reading it back; rows skipped by a conflict are not returned.
 */
export async function bulkInsert(
  db: Kysely<Database>, table: keyof Database & string, rows: Record<string, unknown>[], opts: BulkOptions & { returning: 'id' },
): Promise<string[]>;
export async function bulkInsert<R = Record<string, unknown>>(
  db: Kysely<Database>, table: keyof Database & string, rows: Record<string, unknown>[], opts: BulkOptions & { returning: '*' },
): Promise<R[]>;
export async function bulkInsert(
  db: Kysely<Database>, table: keyof Database & string, rows: Record<string, unknown>[], opts?: BulkOptions & { returning?: undefined },
): Promise<void>;
export async function bulkInsert(
  db: Kysely<Database>, table: keyof Database & string, rows: Record<string, unknown>[], opts: BulkOptions & { returning?: 'id' | '*' } = {},
): Promise<unknown[] | void> {
  const out: unknown[] = [];
  if (!rows.length) return opts.returning ? out : undefined;
  const columns = Object.keys(rows[0]);
  const json = new Set(opts.json ?? []);
  const names = columns.map((c) => JSON.stringify(c));
  let parts: string[] = [];
  let size = 0;
  const flush = async () => {
    if (!parts.length) return;
    const payload = `[${parts.join(',')}]`;
    parts = [];
    size = 0;
    const cols = sql.join(columns.map((c) => sql.ref(c)));
    const conflict = opts.onConflictDoNothing ? sql` ON CONFLICT (${sql.join(opts.onConflictDoNothing.map((c) => sql.ref(c)))}) DO NOTHING` : sql``;
    const returning = opts.returning === 'id' ? sql` RETURNING id` : opts.returning === '*' ? sql` RETURNING *` : sql``;
    const r = await sql<Record<string, unknown>>`${sql.raw(PREPARE_MARK)}INSERT INTO ${sql.table(table)} (${cols}) SELECT ${cols} FROM jsonb_populate_recordset(NULL::${sql.table(table)}, ${payload}::jsonb)${conflict}${returning}`.execute(db);
    if (opts.returning) for (const row of r.rows) out.push(opts.returning === 'id' ? row.id : row);
  };
  for (const row of rows) {
    const s = encodeRow(row, columns, names, json);
    if (size && size + s.length > MAX_PAYLOAD_CHARS) await flush();
    parts.push(s);
    size += s.length + 1;
  }
  await flush();
  return opts.returning ? out : undefined;
}

function encodeRow(row: Record<string, unknown>, columns: string[], names: string[], json: Set<string>): string {
  let s = '{';
  for (let i = 0; i < columns.length; i++) {
    const v = row[columns[i]];
    s += `${i ? ',' : ''}${names[i]}:${json.has(columns[i]) ? (v ?? 'null') : encode(v)}`;
  }
  return `${s}}`;
}

export interface InsertPart {
  table: keyof Database & string;
  rows: Record<string, unknown>[];
  opts?: BulkOptions & { returning?: boolean };
}

/**
 * Several bulk inserts that do not depend on each other's results, in one statement (one
 * data-modifying CTE each): one round trip instead of one per table. On PGlite a transaction holds
 * the database for every round trip to the main thread and back, and a send group's inserts were
 * most of its transaction (bench/README.md). Foreign keys between the parts hold: PostgreSQL checks
 * them at the end of the statement, when every part's rows are in. Answers, for each part with
 * `returning`, its rows as stored — as JSON (`to_jsonb`), so timestamps come back as ISO strings
 * and the caller revives the ones it reads. Parts too large for one payload go one by one.
 */
export async function bulkInsertAll(db: Kysely<Database>, parts: InsertPart[]): Promise<Record<string, unknown>[][]> {
  const out = parts.map((): Record<string, unknown>[] => []);
  const live = parts.flatMap((p, i) => (p.rows.length ? [i] : []));
  const payloads = new Map(live.map((i) => {
    const { rows, opts = {} } = parts[i];
    const columns = Object.keys(rows[0]);
    const names = columns.map((c) => JSON.stringify(c));
    const json = new Set(opts.json ?? []);
    return [i, { columns, payload: `[${rows.map((r) => encodeRow(r, columns, names, json)).join(',')}]` }];
  }));
  if ([...payloads.values()].reduce((n, p) => n + p.payload.length, 0) > MAX_PAYLOAD_CHARS) {
    for (const i of live) {
      const { table, rows, opts = {} } = parts[i];
      if (opts.returning) out[i] = (await bulkInsert(db, table, rows, { ...opts, returning: '*' })).map((r) => JSON.parse(JSON.stringify(r)));
      else await bulkInsert(db, table, rows, { ...opts, returning: undefined });
    }
    return out;
  }
  if (!live.length) return out;
  const ctes = live.map((i) => {
    const { table, opts = {} } = parts[i];
    const { columns, payload } = payloads.get(i)!;
    const cols = sql.join(columns.map((c) => sql.ref(c)));
    const conflict = opts.onConflictDoNothing ? sql` ON CONFLICT (${sql.join(opts.onConflictDoNothing.map((c) => sql.ref(c)))}) DO NOTHING` : sql``;
    const returning = opts.returning ? sql` RETURNING *` : sql``;
    return sql`${sql.raw(`p${i}`)} AS (INSERT INTO ${sql.table(table)} (${cols}) SELECT ${cols} FROM jsonb_populate_recordset(NULL::${sql.table(table)}, ${payload}::jsonb)${conflict}${returning})`;
  });
  const back = live.filter((i) => parts[i].opts?.returning);
  const select = back.length
    ? sql.join(back.map((i) => sql`SELECT ${sql.lit(i)}::int AS part, to_jsonb(${sql.raw(`p${i}`)}) AS row FROM ${sql.raw(`p${i}`)}`), sql` UNION ALL `)
    : sql`SELECT NULL::int AS part, NULL::jsonb AS row WHERE false`;
  const r = await sql<{ part: number; row: Record<string, unknown> }>`${sql.raw(PREPARE_MARK)}WITH ${sql.join(ctes)} ${select}`.execute(db);
  for (const { part, row } of r.rows) out[part].push(row);
  return out;
}

/**
 * A value as JSON. A string that is not well-formed UTF-16 (a lone surrogate) is repaired first:
 * jsonb refuses the `\udXXX` escape JSON.stringify would write, where a text parameter would have
 * carried U+FFFD.
 */
function encode(v: unknown): string {
  if (v === undefined || v === null) return 'null';
  if (typeof v === 'string') return JSON.stringify(v.isWellFormed() ? v : v.toWellFormed());
  if (v instanceof Date) return JSON.stringify(v.toISOString());
  return JSON.stringify(v);
}
