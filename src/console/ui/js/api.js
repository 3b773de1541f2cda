// The console's only way to the server: the public REST API with the operator's token, and the
// event stream. No private endpoint exists for the console, so what it shows is what any client sees.

const TOKEN_KEY = 'mailroom.token';

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail ?? `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

// sessionStorage: the token lives as long as the tab (a shared machine keeps nothing after it closes).
export const storedToken = () => sessionStorage.getItem(TOKEN_KEY);
export const storeToken = (t) => sessionStorage.setItem(TOKEN_KEY, t);
export const forgetToken = () => sessionStorage.removeItem(TOKEN_KEY);

export function createApi(token) {
  async function call(method, path, { body, headers = {}, raw = false, signal } = {}) {
    const res = await fetch(path, {
      method,
      signal,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    if (!res.ok) {
      const problem = await res.json().catch(() => ({ code: 'http_error', title: res.statusText, detail: `HTTP ${res.status}` }));
      throw new ApiError(res.status, problem);
    }
    if (raw) return res;
    if (res.status === 204) return null;
    return res.json();
  }
  const api = {
    token,
    get: (p, o) => call('GET', p, o),
    post: (p, body, o = {}) => call('POST', p, { ...o, body: body ?? {} }),
    patch: (p, body, o = {}) => call('PATCH', p, { ...o, body }),
    del: (p, o) => call('DELETE', p, o),
    raw: (p, o) => call('GET', p, { ...o, raw: true }),
    /** Builds a query string, leaving out empty values. */
    qs(params) {
      const s = new URLSearchParams();
      for (const [k, v] of Object.entries(params)) if (v != null && v !== '') s.set(k, String(v));
      const str = s.toString();
      return str ? `?${str}` : '';
    },
  };
  return api;
}

/**
 * The event stream over fetch (EventSource cannot send an Authorization header). Parses SSE frames,
 * remembers the last id and resumes from it after a drop, backing off up to 10 s.
 */
export function openEventStream(token, onEvent, onState = () => {}) {
  let stopped = false;
  let lastId = null;
  let ctrl = null;
  let delay = 500;
  const run = async () => {
    while (!stopped) {
      ctrl = new AbortController();
      try {
        const res = await fetch('/v1/events/stream', {
          headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', ...(lastId ? { 'last-event-id': lastId } : {}) },
          signal: ctrl.signal,
        });
        if (!res.ok) throw new Error(`stream: HTTP ${res.status}`);
        onState('live');
        delay = 500;
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let at;
          while ((at = buf.indexOf('\n\n')) >= 0) {
            const frame = buf.slice(0, at);
            buf = buf.slice(at + 2);
            let id = null; let type = 'message'; const data = [];
            for (const line of frame.split('\n')) {
              if (line.startsWith(':')) continue;
              const colon = line.indexOf(':');
              const k = colon < 0 ? line : line.slice(0, colon);
              const v = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
              if (k === 'id') id = v; else if (k === 'event') type = v; else if (k === 'data') data.push(v);
            }
            if (id) lastId = id;
            if (type === 'ready' || !data.length) continue;
            try { onEvent(JSON.parse(data.join('\n'))); } catch { /* a frame we cannot read is skipped */ }
          }
        }
      } catch (err) {
        if (stopped) return;
      }
      onState('reconnecting');
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 10_000);
    }
  };
  run();
  return { stop() { stopped = true; ctrl?.abort(); } };
}
