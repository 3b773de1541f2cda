import { MailroomError } from '../errors.ts';

/**
 * Cursor pagination for every list: newest first by id (ids are time-ordered ULIDs), and the cursor
 * is the opaque encoding of the last id returned. A cursor stays valid however many rows arrive.
 */
export interface Page<T> {
  data: T[];
  next_cursor: string | null;
}

export interface PageRequest {
  limit?: number;
  cursor?: string | null;
}

export const DEFAULT_LIMIT = 50;
export const MAX_LIMIT = 200;

export function decodeCursor(cursor: string | null | undefined): string | null {
  if (!cursor) return null;
  const id = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!/^[a-z]{3}_[0-9a-z]{26}$/.test(id)) throw new MailroomError('invalid_request', 'invalid cursor');
  return id;
}

export const encodeCursor = (id: string): string => Buffer.from(id, 'utf8').toString('base64url');

export const clampLimit = (limit?: number): number => Math.min(Math.max(1, limit ?? DEFAULT_LIMIT), MAX_LIMIT);

/** Given rows fetched with `limit + 1`, cuts the extra row off and derives the next cursor. */
export function toPage<R extends { id: string }, T>(rows: R[], limit: number, map: (r: R) => T): Page<T> {
  const more = rows.length > limit;
  const kept = more ? rows.slice(0, limit) : rows;
  return { data: kept.map(map), next_cursor: more ? encodeCursor(kept[kept.length - 1].id) : null };
}
