import { parentPort } from 'node:worker_threads';
import type { WireError } from './pool.ts';

/**
 * The thread side of a ThreadPool (pool.ts): answers each posted task with `handle`'s result, or
 * with its error in a form that survives structured clone (a MailroomError's code and details
 * included). `transfer` names buffers of the result to move rather than copy.
 */
export function serveTasks<I, O>(handle: (input: I) => Promise<O>, transfer: (result: O) => ArrayBuffer[] = () => []): void {
  const port = parentPort!;
  port.on('message', (m: { id: number; input: I }) => {
    handle(m.input).then(
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
