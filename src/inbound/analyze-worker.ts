import { parentPort, workerData } from 'node:worker_threads';
import { cachingResolve, createResolver } from '../dns/resolver.ts';
import { FileBlobStore } from '../store/blobs.ts';
import { analyzeMessages, type AnalyzeInput, type Analysis } from './analyze.ts';
import type { WorkerSetup } from './analyzer.ts';

/**
 * An analysis thread (see analyzer.ts): parse, kind, authentication, reply, injection score, and
 * in embedded mode the blob files, for batches posted by the main thread.
 */
const setup = workerData as WorkerSetup;
const port = parentPort!;
const auth = setup.auth
  ? { authservId: setup.auth.authservId, resolve: cachingResolve(createResolver(setup.auth.dnsServers)), trustedDomains: setup.auth.trustedDomains }
  : null;
// Synchronous file writes: this thread has nothing else to do meanwhile (see FileBlobStore.putSync).
const files = setup.blobRoot ? new FileBlobStore(setup.blobRoot) : null;
const blobs = files ? { put: async (data: Buffer) => files.putSync(data), get: (sha: string) => files.get(sha) } : null;

const toBuffer = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

port.on('message', (m: { id: number; inputs: AnalyzeInput[] }) => {
  const inputs = m.inputs.map((i) => ({ ...i, raw: toBuffer(i.raw) }));
  analyzeMessages(inputs, { auth, blobs }).then(
    (results: Analysis[]) => {
      // Large attachment bodies the caller stores itself go back without a copy, when the body is
      // the sole user of its memory (small buffers share Node's pool, which must never be detached).
      const transfer = results.flatMap((r) => r.attachments.flatMap((a) => (a.content
        && a.content.length >= 65_536 && a.content.byteOffset === 0 && a.content.buffer.byteLength === a.content.length ? [a.content.buffer as ArrayBuffer] : [])));
      port.postMessage({ id: m.id, results }, [...new Set(transfer)]);
    },
    (err: Error & { code?: string }) => port.postMessage({ id: m.id, error: { message: String(err?.message ?? err), code: err?.code, stack: err?.stack } }),
  );
});
