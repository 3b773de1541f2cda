import { availableParallelism } from 'node:os';
import { MailroomError } from '../errors.ts';
import { parseMessage, type ParsedMessage } from '../mime/parse.ts';
import { ThreadPool } from '../threads/pool.ts';
import { toBuffer } from '../threads/serve.ts';
import type { Mailbox } from './addresses.ts';
import { compose, type Composed, type SendContent, type Threading } from './compose.ts';
import { dkimSignature, type DkimKey } from './dkim.ts';

/**
 * The CPU part of a send, everything before the database: compose (MailComposer, with every check
 * that can refuse the request), DKIM-sign, and parse the result back for the stored fields. About
 * 1.5–2 ms of CPU per message (an RSA-2048 signature alone is most of it), which on the main
 * thread held up every HTTP request and every database round trip behind it: at a few hundred
 * sends a second the main thread was the busiest part of Mailroom (bench/README.md, "Outbound").
 * So a running Mailroom does it on worker threads (`createPreparer`); `prepareSend` is the work
 * itself, on whichever thread calls it.
 */
export interface PrepareJob {
  content: SendContent;
  from: Mailbox;
  threading: Threading;
  maxSize: number;
  traceId: string;
  date: Date;
  /** A marketing send's List-Unsubscribe headers; such a send takes exactly one recipient. */
  unsubscribe: Record<string, string> | null;
  /** The sending domain's key; null sends unsigned (the domain has none). */
  dkim: { domain: string; key: Pick<DkimKey, 'selector' | 'privateKey'> } | null;
}

export interface Prepared {
  /** What composing decided (Message-ID, recipients, subject); its bytes are in `raw`, not repeated. */
  composed: Omit<Composed, 'raw'>;
  /** The message as sent: DKIM-Signature (when signed), then the composed bytes. */
  raw: Buffer;
  parsed: ParsedMessage;
}

export async function prepareSend(job: PrepareJob): Promise<Prepared> {
  const composed = await compose(job.content, job.from, job.threading, {
    maxSize: job.maxSize, traceId: job.traceId, date: job.date,
    extraHeaders: job.unsubscribe
      ? async (recipients) => {
        // The unsubscribe token names one message and so one recipient: bulk mail is one message per person.
        if (recipients.length !== 1) throw new MailroomError('invalid_request', 'a marketing send (List-Unsubscribe) takes exactly one recipient');
        return job.unsubscribe!;
      }
      : undefined,
  });
  const { raw: unsigned, ...fields } = composed;
  const raw = job.dkim ? Buffer.concat([await dkimSignature(unsigned, job.dkim.domain, job.dkim.key), unsigned]) : unsigned;
  return { composed: fields, raw, parsed: await parseMessage(raw) };
}

export interface Preparer {
  prepare(job: PrepareJob): Promise<Prepared>;
  close(): Promise<void>;
}

export class ThreadPreparer implements Preparer {
  readonly #pool: ThreadPool<PrepareJob, Prepared>;

  constructor(threads: number) {
    this.#pool = new ThreadPool({ url: new URL('./prepare-worker.ts', import.meta.url), threads, name: 'send preparation' });
  }

  async prepare(job: PrepareJob): Promise<Prepared> {
    const r = await this.#pool.run(job);
    // Structured clone turned every Buffer into a Uint8Array.
    return {
      composed: r.composed,
      raw: toBuffer(r.raw),
      parsed: { ...r.parsed, attachments: r.parsed.attachments.map((a) => ({ ...a, content: toBuffer(a.content) })) },
    };
  }

  /** For tests: the pool's threads end as in a crash. */
  crashForTest(): Promise<void> {
    return this.#pool.crashForTest();
  }

  close(): Promise<void> {
    return this.#pool.close();
  }
}

/**
 * The preparer of a running Mailroom: one thread per core but one (the main thread keeps a core for
 * HTTP, the database and the deliveries), at least one, at most four. Threads start at the first send.
 */
export function createPreparer(threads = Math.min(4, Math.max(1, availableParallelism() - 1))): Preparer {
  return new ThreadPreparer(threads);
}
