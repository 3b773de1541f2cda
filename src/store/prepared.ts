import { createHash } from 'node:crypto';
import type pg from 'pg';

/**
 * Statements whose SQL text begins with PREPARE_MARK run as named prepared statements on
 * PostgreSQL: parsed and planned once per connection instead of at every execution. Used for the
 * few fixed-text statements on the hot paths — the accept statement every PostgreSQL `250` waits
 * for (receipts.ts; 0.83 → 0.54 ms per execution measured here) and ingest's bulk inserts
 * (bulk.ts). Only marked texts are named, and each marked call site has one fixed text, so the
 * number of statements a connection keeps is bounded. PGlite ignores the mark (a comment).
 */
export const PREPARE_MARK = '/* prepared */ ';

export function prepareMarked(client: pg.PoolClient): void {
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  const names = new Map<string, string>();
  (client as { query: unknown }).query = (text: unknown, ...rest: unknown[]) => {
    if (typeof text !== 'string' || !text.startsWith(PREPARE_MARK) || !Array.isArray(rest[0])) return query(text, ...rest);
    let name = names.get(text);
    if (!name) names.set(text, (name = `mr_${createHash('sha1').update(text).digest('hex').slice(0, 20)}`));
    return query({ name, text, values: rest[0] }, ...rest.slice(1));
  };
}
