import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Kysely } from 'kysely';
import type { Database } from './schema.ts';

/**
 * Content-addressed storage for raw messages and attachment bodies, kept apart from the rows (as
 * Stalwart and WildDuck do): a blob is named by the sha256 of its bytes, so an attachment sent to a
 * hundred inboxes is stored once, and a put that races another put of the same bytes is harmless.
 * The interface is deliberately tiny so an S3 backend can be added later.
 */
export interface BlobStore {
  /** Stores bytes and returns their sha256 (hex). Idempotent. */
  put(data: Buffer, db?: Kysely<Database>): Promise<string>;
  /** The bytes, or null when no such blob exists. */
  get(sha256: string): Promise<Buffer | null>;
}

export const sha256Hex = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

const SHA_RE = /^[0-9a-f]{64}$/;

/** Embedded mode: one file per blob under `<dataDir>/blobs/ab/abcdef…`. */
export class FileBlobStore implements BlobStore {
  readonly #root: string;
  /** Fan-out directories known to exist: one mkdir per directory per process, not one per blob. */
  readonly #dirs = new Set<string>();

  constructor(root: string) {
    this.#root = root;
  }

  #path(sha: string): string {
    return path.join(this.#root, sha.slice(0, 2), sha);
  }

  async put(data: Buffer): Promise<string> {
    const sha = sha256Hex(data);
    const target = this.#path(sha);
    const dir = path.dirname(target);
    if (!this.#dirs.has(dir)) {
      await mkdir(dir, { recursive: true });
      this.#dirs.add(dir);
    }
    // Write-then-rename so a reader (or a crash) never sees a half-written blob under its final name.
    // A blob that already exists is simply replaced by identical bytes: cheaper than checking first
    // (two file operations per blob, no failed stat), and content addressing makes it harmless.
    // No fsync: blobs are derived from the fsync'd spool, which is only retired after they exist;
    // see docs/architecture.md, "What each mode survives".
    const tmp = `${target}.${randomBytes(6).toString('hex')}.tmp`;
    await writeFile(tmp, data);
    await rename(tmp, target).catch(async (err) => {
      await rm(tmp, { force: true });
      throw err;
    });
    return sha;
  }

  async get(sha: string): Promise<Buffer | null> {
    if (!SHA_RE.test(sha)) return null;
    try {
      return await readFile(this.#path(sha));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }
}

/**
 * PostgreSQL mode: blobs are rows, so a blob written inside the accepting transaction commits
 * (and is fsync'd by PostgreSQL) together with the envelope that points at it.
 */
export class TableBlobStore implements BlobStore {
  readonly #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async put(data: Buffer, db: Kysely<Database> = this.#db): Promise<string> {
    const sha = sha256Hex(data);
    await db
      .insertInto('blobs')
      .values({ sha256: sha, size: data.length, data })
      .onConflict((oc) => oc.column('sha256').doNothing())
      .execute();
    return sha;
  }

  async get(sha: string): Promise<Buffer | null> {
    if (!SHA_RE.test(sha)) return null;
    const row = await this.#db.selectFrom('blobs').select('data').where('sha256', '=', sha).executeTakeFirst();
    return row ? Buffer.from(row.data) : null;
  }
}
