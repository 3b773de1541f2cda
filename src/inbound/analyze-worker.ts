import { workerData } from 'node:worker_threads';
import { cachingResolve, createResolver } from '../dns/resolver.ts';
import { FileBlobStore } from '../store/blobs.ts';
import { analyzeMessages, type AnalyzeInput, type Analysis } from './analyze.ts';
import type { WorkerSetup } from './analyzer.ts';
import { serveTasks, toBuffer } from '../threads/serve.ts';

/**
 * An analysis thread (see analyzer.ts): parse, kind, authentication, reply, injection score, and
 * in embedded mode the blob files, for batches posted by the main thread.
 */
const setup = workerData as WorkerSetup;
const auth = setup.auth
  ? { authservId: setup.auth.authservId, resolve: cachingResolve(createResolver(setup.auth.dnsServers)), trustedDomains: setup.auth.trustedDomains }
  : null;
// Synchronous file writes: this thread has nothing else to do meanwhile (see FileBlobStore.putSync).
const files = setup.blobRoot ? new FileBlobStore(setup.blobRoot) : null;
const blobs = files ? { put: async (data: Buffer) => files.putSync(data), get: (sha: string) => files.get(sha) } : null;

serveTasks(
  (inputs: AnalyzeInput[]) => analyzeMessages(inputs.map((i) => ({ ...i, raw: toBuffer(i.raw) })), { auth, blobs }),
  {
    // Large attachment bodies the caller stores itself go back without a copy, when the body is
    // the sole user of its memory (small buffers share Node's pool, which must never be detached).
    transfer: (results: Analysis[]) => [...new Set(results.flatMap((r) => r.attachments.flatMap((a) => (a.content
      && a.content.length >= 65_536 && a.content.byteOffset === 0 && a.content.buffer.byteLength === a.content.length ? [a.content.buffer as ArrayBuffer] : []))))],
  },
);
