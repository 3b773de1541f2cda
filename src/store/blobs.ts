import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { threadId } from 'node:worker_threads';
import type { Kysely } from 'kysely';
import { bulkInsert } from './bulk.ts';
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
  /** A file store's directory: another thread may open its own `FileBlobStore` on it. */
  readonly root?: string;
  /** Several blobs in one read, where the store can do that (a table); missing ones are left out. */
  getMany?(sha256s: string[]): Promise<Map<string, Buffer>>;
  /** Several blobs in one statement, in the caller's transaction, where the store is a table. */
  putMany?(data: Buffer[], db: Kysely<Database>): Promise<void>;
}

export const sha256Hex = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

const SHA_RE = /^[0-9a-f]{64}$/;

/**
 * Where else a blob may be: a byte range of a file under the data directory, as
 * `relative/path:offset:length` (received raw messages stay in the spool; see inbound/spool.ts).
 */
export interface BlobRanges {
  /** The directory the ranges' paths are relative to. */
  base: string;
  /** The range holding the blob with this sha256, or null. */
  find(sha256: string): Promise<string | null>;
}

/** Embedded mode: one file per blob under `<dataDir>/blobs/ab/abcdef…`, or a range of a spool segment. */
export class FileBlobStore implements BlobStore {
  readonly #root: string;
  readonly #ranges: BlobRanges | null;
  /** Fan-out directories known to exist: one mkdir per directory per process, not one per blob. */
  readonly #dirs = new Set<string>();
  #tmpSeq = 0;

  constructor(root: string, ranges?: BlobRanges) {
    this.#root = root;
    this.#ranges = ranges ?? null;
  }

  get root(): string {
    return this.#root;
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

  /**
   * `put` with synchronous file calls, for threads that do nothing else (ingest's analysis threads):
   * a promise-based write costs several times the CPU of the synchronous calls (thread-pool
   * hand-offs), and blocking is harmless where no socket waits. The file is created in place
   * (O_EXCL) rather than renamed into place: creating a file is the expensive step on a busy ext4
   * and a rename adds another. That is safe for content-addressed blobs: nobody can read a blob
   * before the row naming it is committed, which happens after this returns, and a file that
   * already exists with the right size holds these very bytes. A file of another size (a put cut
   * short by a crash, or one still being written by another thread) is replaced atomically as `put` does.
   */
  putSync(data: Buffer): string {
    const sha = sha256Hex(data);
    const target = this.#path(sha);
    const dir = path.dirname(target);
    if (!this.#dirs.has(dir)) {
      mkdirSync(dir, { recursive: true });
      this.#dirs.add(dir);
    }
    let fd: number;
    try {
      fd = openSync(target, 'wx');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (statSync(target, { throwIfNoEntry: false })?.size === data.length) return sha;
      // Unique per thread without a random draw: only this thread writes under this name.
      const tmp = `${target}.${process.pid}-${threadId}-${++this.#tmpSeq}.tmp`;
      writeFileSync(tmp, data);
      try {
        renameSync(tmp, target);
      } catch (e) {
        rmSync(tmp, { force: true });
        throw e;
      }
      return sha;
    }
    try {
      for (let off = 0; off < data.length;) off += writeSync(fd, data, off, data.length - off);
    } catch (err) {
      closeSync(fd);
      rmSync(target, { force: true }); // never leave a short file under the final name
      throw err;
    }
    closeSync(fd);
    return sha;
  }

  async get(sha: string): Promise<Buffer | null> {
    if (!SHA_RE.test(sha)) return null;
    try {
      return await readFile(this.#path(sha));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const ref = this.#ranges ? await this.#ranges.find(sha) : null;
    return ref ? readRange(this.#ranges!.base, ref, sha) : null;
  }
}

/** The bytes of `path:offset:length` under `base`, checked against their sha256. */
async function readRange(base: string, ref: string, sha: string): Promise<Buffer | null> {
  const m = /^(.+):(\d+):(\d+)$/.exec(ref);
  if (!m) return null;
  const file = path.resolve(base, m[1]);
  if (!file.startsWith(path.resolve(base) + path.sep)) return null;
  const [offset, length] = [Number(m[2]), Number(m[3])];
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  try {
    const buf = Buffer.alloc(length);
    let got = 0;
    while (got < length) {
      const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
      if (!bytesRead) return null;
      got += bytesRead;
    }
    // A range is only as good as the row that names it: never hand out other bytes.
    return sha256Hex(buf) === sha ? buf : null;
  } finally {
    await fh.close();
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

  /** One insert for all of them (the send API's group transaction): bytea as hex in one JSON parameter (bulk.ts). */
  async putMany(data: Buffer[], db: Kysely<Database>): Promise<void> {
    const unique = new Map(data.map((d) => [sha256Hex(d), d]));
    await bulkInsert(db, 'blobs', [...unique].map(([sha256, d]) => ({ sha256, size: d.length, data: `\\x${d.toString('hex')}` })), { onConflictDoNothing: ['sha256'] });
  }

  async getMany(shas: string[]): Promise<Map<string, Buffer>> {
    const valid = shas.filter((sha) => SHA_RE.test(sha));
    if (!valid.length) return new Map();
    const rows = await this.#db.selectFrom('blobs').select(['sha256', 'data']).where('sha256', 'in', valid).execute();
    return new Map(rows.map((r) => [r.sha256, Buffer.from(r.data)]));
  }
}
