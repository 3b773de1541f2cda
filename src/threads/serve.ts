import { parentPort } from 'node:worker_threads';
import type { WireError } from './pool.ts';

export interface ServeOptions<O> {
  /** Buffers of the result to move rather than copy. */
  transfer?: (result: O) => ArrayBuffer[];
  /**
   * Run the tasks one after another instead of side by side. For tasks that are all CPU: side by
   * side they share the thread and every one of a burst finishes at the end of the burst; one at a
   * time the first finishes after its own work, and the mean wait halves. Measured on send
   * preparation: about 15 % more sends a second at the same concurrency (bench/README.md). Tasks
   * that wait on I/O (the inbound analyzer's DNS lookups) must stay side by side.
   */
  oneAtATime?: boolean;
}

/**
 * The thread side of a ThreadPool (pool.ts): answers each posted task with `handle`'s result, or
 * with its error in a form that survives structured clone (a MailroomError's code and details
 * included).
 */
export function serveTasks<I, O>(handle: (input: I) => Promise<O>, opts: ServeOptions<O> = {}): void {
  const port = parentPort!;
  const transfer = opts.transfer ?? (() => []);
  let previous: Promise<unknown> = Promise.resolve();
  port.on('message', (m: { id: number; input: I }) => {
    const task = opts.oneAtATime ? previous.then(() => handle(m.input)) : handle(m.input);
    if (opts.oneAtATime) previous = task.catch(() => {});
    task.then(
      (result) => port.postMessage({ id: m.id, result }, transfer(result)),
      (err: Error & { code?: string; details?: unknown }) => {
        const error: WireError = { message: String(err?.message ?? err), name: err?.name, code: err?.code, stack: err?.stack, details: err?.details };
        try {
          port.postMessage({ id: m.id, error });
        } catch {
          // Details that cannot be cloned must not leave the task unanswered.
          port.postMessage({ id: m.id, error: { ...error, details: undefined } });
        }
      },
    );
  });
}

/** A Buffer over a structured-cloned Uint8Array's bytes (no copy). */
export const toBuffer = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
