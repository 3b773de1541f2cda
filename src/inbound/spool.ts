import { link, mkdir, open, readdir, readFile, rm, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { crc32 } from 'node:zlib';

/**
 * The embedded mode's durable accept log. PGlite runs with fsync off (electric-sql/pglite#1107), so
 * in embedded mode "250 means it is on disk" rests on this file instead, as Postfix's and
 * OpenSMTPD's do on their queue files: every accepted message (envelope + raw bytes) is appended
 * to the current segment and the segment is fdatasync'd before the SMTP `250` is sent.
 *
 * Group commit: appends that arrive while a sync is running wait for the next one, so ten
 * connections share one fdatasync instead of paying ten. Records are CRC-checked, so a torn tail
 * left by a crash mid-append is recognised and ignored (it was never acknowledged).
 *
 * Records leave the spool once their rows are in the database (`release`); a segment file is
 * deleted when it is no longer the active one and all its records are released. At start-up every
 * record still in a segment is handed back for re-ingestion, which is idempotent.
 *
 * The spool is also where the raw messages stay: every segment has a second name, `raw/seg-N`
 * (a hard link made when the segment is created), which outlives the segment's retirement. A
 * record's raw bytes are addressed by `rawRef` (`spool/raw/seg-N:offset:length`, relative to the
 * data directory), so they are written to disk once, fdatasync'd, instead of being copied into a
 * blob file of their own — on a busy ext4 creating a file costs 0.1–0.3 ms (bench/README.md).
 *
 * Record layout: magic "MRS1" | u32 header length | u32 raw length | u32 crc32(header+raw) | header (JSON) | raw
 */
const MAGIC = Buffer.from('MRS1');
const PREFIX = 16;
const SEGMENT_MAX_BYTES = 64 * 1024 * 1024;

export interface SpoolRecord<H> {
  header: H;
  raw: Buffer;
  /** Where the raw bytes are, relative to the spool's parent directory (see `rawRef`). */
  ref?: string;
}

/** Where a record's raw bytes stay: `spool/raw/seg-N:offset:length` (a path relative to the spool's parent). */
export const rawRef = (dirName: string, seq: number, offset: number, length: number): string =>
  `${dirName}/raw/${segmentName(seq).slice(0, -4)}:${offset}:${length}`;

const segmentName = (seq: number) => `seg-${String(seq).padStart(10, '0')}.log`;

interface Pending {
  bufs: Buffer[];
  bytes: number;
  /** Bytes of the record before its raw bytes (prefix and header). */
  headBytes: number;
  key: string;
  resolve: (ref: string) => void;
  reject: (err: Error) => void;
}

interface Segment {
  name: string;
  seq: number;
  fh: FileHandle | null;
  size: number;
  live: Set<string>;
}

export class Spool<H> {
  readonly #dir: string;
  #active!: Segment;
  #segments = new Map<string, Segment>();
  #byKey = new Map<string, Segment>();
  #queue: Pending[] = [];
  #flushing: Promise<void> | null = null;
  #seq = 0;
  #closed = false;
  #retiring = new Set<Promise<void>>();

  private constructor(dir: string) {
    this.#dir = dir;
  }

  /**
   * Opens the spool and returns the records left by a previous run (acknowledged but maybe not
   * yet in the database). `keyOf` names a record so it can be released later.
   */
  static async open<H>(dir: string, keyOf: (h: H) => string): Promise<{ spool: Spool<H>; recovered: SpoolRecord<H>[] }> {
    const rawDir = path.join(dir, 'raw');
    await mkdir(rawDir, { recursive: true });
    const spool = new Spool<H>(dir);
    // Segment numbers are never reused: a retired segment's raw name still holds its messages.
    for (const n of await readdir(rawDir)) if (/^seg-\d+$/.test(n)) spool.#seq = Math.max(spool.#seq, Number(n.slice(4)));
    const names = (await readdir(dir)).filter((n) => /^seg-\d+\.log$/.test(n)).sort();
    const recovered: SpoolRecord<H>[] = [];
    for (const name of names) {
      const seq = Number(name.slice(4, -4));
      spool.#seq = Math.max(spool.#seq, seq);
      // A segment written before raw names existed (or whose link a crash lost) gets one now.
      await linkRaw(path.join(dir, name), spool.#rawPath(seq), true);
      const records = readRecords<H>(await readFile(path.join(dir, name)));
      const seg: Segment = { name, seq, fh: null, size: 0, live: new Set() };
      for (const r of records) {
        const key = keyOf(r.header);
        seg.live.add(key);
        spool.#byKey.set(key, seg);
        recovered.push({ header: r.header, raw: r.raw, ref: rawRef(path.basename(dir), seq, r.offset, r.raw.length) });
      }
      if (seg.live.size) spool.#segments.set(name, seg);
      else {
        await syncDir(rawDir);
        await rm(path.join(dir, name), { force: true });
      }
    }
    await spool.#rotate();
    return { spool, recovered };
  }

  /** Appends a record and resolves once it is on disk (fdatasync'd), with where its raw bytes are (`rawRef`). */
  append(key: string, header: H, raw: Buffer): Promise<string> {
    if (this.#closed) return Promise.reject(new Error('spool is closed'));
    const head = Buffer.from(JSON.stringify(header));
    const prefix = Buffer.alloc(PREFIX);
    MAGIC.copy(prefix, 0);
    prefix.writeUInt32BE(head.length, 4);
    prefix.writeUInt32BE(raw.length, 8);
    prefix.writeUInt32BE(crc32(raw, crc32(head)), 12);
    return new Promise((resolve, reject) => {
      this.#queue.push({ bufs: [prefix, head, raw], bytes: PREFIX + head.length + raw.length, headBytes: PREFIX + head.length, key, resolve, reject });
      this.#flushing ??= this.#flushLoop();
    });
  }

  /** The record's rows are committed elsewhere: it no longer needs to be kept. */
  release(key: string): void {
    const seg = this.#byKey.get(key);
    if (!seg) return;
    this.#byKey.delete(key);
    seg.live.delete(key);
    if (seg !== this.#active && seg.live.size === 0) {
      const retiring = this.#retire(seg).catch(() => {}).finally(() => this.#retiring.delete(retiring));
      this.#retiring.add(retiring);
    }
  }

  /** Records appended but not yet released (for tests and metrics). */
  get unreleased(): number {
    return this.#byKey.size;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#flushing;
    await Promise.all(this.#retiring);
    await this.#active.fh?.close();
    this.#active.fh = null;
  }

  async #flushLoop(): Promise<void> {
    try {
      while (this.#queue.length) {
        const batch = this.#queue.splice(0);
        const seg = this.#active;
        const start = seg.size;
        try {
          await writeFully(seg.fh!, batch.flatMap((p) => p.bufs), start);
          await seg.fh!.datasync();
        } catch (err) {
          // Disk full or I/O error: nobody in this batch gets a 250. Cut the segment back to its last
          // good record and start a new one, so the unacknowledged tail can never hide later records.
          await seg.fh!.truncate(start).catch(() => {});
          for (const p of batch) p.reject(err as Error);
          await this.#rotate().catch(() => {});
          continue;
        }
        let at = start;
        const dirName = path.basename(this.#dir);
        for (const p of batch) {
          seg.live.add(p.key);
          this.#byKey.set(p.key, seg);
          p.resolve(rawRef(dirName, seg.seq, at + p.headBytes, p.bytes - p.headBytes));
          at += p.bytes;
        }
        seg.size = at;
        if (seg.size >= SEGMENT_MAX_BYTES) await this.#rotate();
      }
    } finally {
      this.#flushing = null;
    }
  }

  #rawPath(seq: number): string {
    return path.join(this.#dir, 'raw', segmentName(seq).slice(0, -4));
  }

  async #rotate(): Promise<void> {
    const previous = this.#active as Segment | undefined;
    const seq = ++this.#seq;
    const name = segmentName(seq);
    const fh = await open(path.join(this.#dir, name), 'w');
    await syncDir(this.#dir); // the new file's directory entry must survive a crash too
    // Its second name, under which the raw messages stay once the segment is retired. Made durable
    // before the first name goes (#retire); until then a crash loses nothing (recovery links again).
    await linkRaw(path.join(this.#dir, name), this.#rawPath(seq), false);
    const seg: Segment = { name, seq, fh, size: 0, live: new Set() };
    this.#segments.set(name, seg);
    this.#active = seg;
    if (previous) {
      await previous.fh?.close().catch(() => {});
      previous.fh = null;
      if (previous.live.size === 0) await this.#retire(previous);
    }
  }

  async #retire(seg: Segment): Promise<void> {
    if (!this.#segments.has(seg.name)) return;
    this.#segments.delete(seg.name);
    // The raw link must survive a crash once the segment's own name is gone.
    await syncDir(path.join(this.#dir, 'raw'));
    await rm(path.join(this.#dir, seg.name), { force: true });
  }
}

async function writeFully(fh: FileHandle, bufs: Buffer[], position: number): Promise<void> {
  let pos = position;
  let pending = bufs;
  while (pending.length) {
    const { bytesWritten } = await fh.writev(pending, pos);
    pos += bytesWritten;
    // writev may write less than asked (rare); continue from where it stopped.
    let skip = bytesWritten;
    const rest: Buffer[] = [];
    for (const b of pending) {
      if (skip >= b.length) { skip -= b.length; continue; }
      rest.push(skip ? b.subarray(skip) : b);
      skip = 0;
    }
    pending = rest;
  }
}

/**
 * Gives a segment its raw name. At recovery the name may exist already; it must then be the same
 * file (a different one would mean a reused segment number: its messages would be misread).
 */
async function linkRaw(segment: string, raw: string, mayExist: boolean): Promise<void> {
  try {
    await link(segment, raw);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || !mayExist) throw err;
    const [a, b] = await Promise.all([stat(segment), stat(raw)]);
    if (a.ino !== b.ino || a.dev !== b.dev) throw new Error(`spool: ${raw} exists and is not ${segment}`);
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Parses a segment, stopping at the first torn or corrupt record (an unacknowledged tail). `offset`: where each raw starts. */
export function readRecords<H>(buf: Buffer): (SpoolRecord<H> & { offset: number })[] {
  const out: (SpoolRecord<H> & { offset: number })[] = [];
  let pos = 0;
  while (pos + PREFIX <= buf.length) {
    if (!buf.subarray(pos, pos + 4).equals(MAGIC)) break;
    const headLen = buf.readUInt32BE(pos + 4);
    const rawLen = buf.readUInt32BE(pos + 8);
    const crc = buf.readUInt32BE(pos + 12);
    const end = pos + PREFIX + headLen + rawLen;
    if (end > buf.length) break;
    const head = buf.subarray(pos + PREFIX, pos + PREFIX + headLen);
    const raw = buf.subarray(pos + PREFIX + headLen, end);
    if (crc32(raw, crc32(head)) !== crc) break;
    try {
      out.push({ header: JSON.parse(head.toString('utf8')) as H, raw: Buffer.from(raw), offset: pos + PREFIX + headLen });
    } catch {
      break;
    }
    pos = end;
  }
  return out;
}
