/**
 * A minimal Server-Sent Events client over fetch for tests: the frames as the server wrote them
 * (id, event, data), and a way to hang up mid-stream. Hand-written (20 lines of the WHATWG parsing
 * rules) so the test sees exactly what went over the wire, with no client library's reconnect
 * logic in between.
 */
export interface SseFrame { id?: string; event?: string; data: string }

export interface SseStream {
  status: number;
  frames: SseFrame[];
  /** Resolves when a frame matching `pred` has arrived (or rejects after timeoutMs). */
  until(pred: (f: SseFrame, all: SseFrame[]) => boolean, timeoutMs?: number): Promise<SseFrame>;
  close(): void;
}

export async function openSse(url: string, token: string, headers: Record<string, string> = {}): Promise<SseStream> {
  const ac = new AbortController();
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', ...headers }, signal: ac.signal });
  const frames: SseFrame[] = [];
  const waiters = new Set<() => void>();
  if (res.ok && res.body) {
    void (async () => {
      const decoder = new TextDecoder();
      let buf = '';
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          buf += decoder.decode(chunk, { stream: true });
          let i: number;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const f: SseFrame = { data: '' };
            let hasData = false;
            for (const line of block.split('\n')) {
              if (line.startsWith(':')) continue;
              const [k, ...rest] = line.split(':');
              const v = rest.join(':').replace(/^ /, '');
              if (k === 'id') f.id = v;
              else if (k === 'event') f.event = v;
              else if (k === 'data') { f.data += (hasData ? '\n' : '') + v; hasData = true; }
            }
            if (hasData) { frames.push(f); for (const w of [...waiters]) w(); }
          }
        }
      } catch { /* aborted */ }
    })();
  }
  return {
    status: res.status,
    frames,
    until(pred, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = frames.find((f) => pred(f, frames));
          if (hit) { waiters.delete(check); clearTimeout(t); resolve(hit); return true; }
          return false;
        };
        const t = setTimeout(() => { waiters.delete(check); reject(new Error(`SSE: no matching frame within ${timeoutMs} ms (${frames.length} frames)`)); }, timeoutMs);
        if (!check()) waiters.add(check);
      });
    },
    close: () => ac.abort(),
  };
}
