import { abortReason, apiError, retryAfterMs, sleep, type Core, type RequestOptions } from './core.ts';
import { MailroomApiError } from './errors.ts';
import { SseParser } from './sse.ts';
import type { Event, EventListParams, EventPage, EventStreamParams } from './types.ts';

const MIN_RECONNECT_MS = 500;
const MAX_RECONNECT_MS = 10_000;
/** The server writes a keep-alive comment every 15 s: this long without a byte means a dead connection. */
const IDLE_TIMEOUT_MS = 45_000;

const joinTypes = (t: string | string[] | undefined) => (Array.isArray(t) ? (t.length ? t.join(',') : undefined) : t);
/** Statuses after which reconnecting may help; any other error status ends the stream with the error. */
const transient = (status: number) => status === 408 || status === 429 || status >= 500;

export class Events {
  readonly #core: Core;

  constructor(core: Core) {
    this.#core = core;
  }

  /**
   * One page of the event log, oldest first, after `after` (from the oldest retained event without
   * it). `next_cursor` is where to resume, also when the page is empty: poll with it for new events.
   */
  async list(params: EventListParams = {}, options?: RequestOptions): Promise<EventPage> {
    const r = await this.#core.request<EventPage>({
      method: 'GET', path: '/v1/events', options,
      query: { after: params.after, types: joinTypes(params.types), inbox_id: params.inbox_id, limit: params.limit },
    });
    return r.data;
  }

  /**
   * The event log live, over Server-Sent Events: `for await (const e of mr.events.stream())`.
   * Starts after `after` (a cursor or event id), or with the events that happen from now on. A
   * dropped connection (or one silent for 45 s) is reopened with Last-Event-ID set to the last
   * event seen — after 0.5 s, doubling up to 10 s while it keeps failing — so the iteration neither
   * misses nor repeats an event. It ends when `signal` aborts or the loop breaks; a non-transient
   * error (401, 403, 404, 400) is thrown.
   */
  async *stream(params: EventStreamParams = {}): AsyncGenerator<Event, void, undefined> {
    const core = this.#core;
    const url = core.url('/v1/events/stream', { types: joinTypes(params.types), inbox_id: params.inbox_id });
    const stop = new AbortController();
    const user = params.signal;
    const onUserAbort = () => stop.abort(abortReason(user!));
    if (user?.aborted) return;
    user?.addEventListener('abort', onUserAbort, { once: true });
    let last = params.after;
    let delay = MIN_RECONNECT_MS;
    try {
      while (!stop.signal.aborted) {
        let wait = delay;
        // One connection: its own controller, so an idle timeout can end it without ending the stream.
        const conn = new AbortController();
        const onStop = () => conn.abort(stop.signal.reason);
        stop.signal.addEventListener('abort', onStop, { once: true });
        try {
          const headers = core.headers({ accept: 'text/event-stream', 'cache-control': 'no-cache' });
          if (last) headers.set('last-event-id', last);
          const res = await core.fetch(url, { method: 'GET', headers, signal: conn.signal });
          if (!res.ok) {
            const err = apiError(res, await res.text().catch(() => ''));
            if (!transient(res.status)) throw err;
            const ra = retryAfterMs(res.headers);
            if (ra !== null) wait = Math.min(Math.max(ra, delay), 60_000);
          } else if (res.body) {
            const reader = res.body.getReader();
            const decoder = new TextDecoder();
            const parser = new SseParser();
            for (;;) {
              let timer: ReturnType<typeof setTimeout> | undefined;
              const idle = new Promise<null>((resolve) => { timer = setTimeout(() => resolve(null), IDLE_TIMEOUT_MS); });
              const chunk = await Promise.race([reader.read(), idle]).finally(() => clearTimeout(timer));
              if (chunk === null) { conn.abort(); reader.cancel().catch(() => {}); break; }
              if (chunk.done) break;
              for (const msg of parser.push(decoder.decode(chunk.value, { stream: true }))) {
                if (msg.event === 'ready') {
                  // Connected. The ready frame carries the position the stream starts at: holding it,
                  // a reconnect before the first event still resumes exactly here.
                  delay = MIN_RECONNECT_MS;
                  wait = delay;
                  if (!last) {
                    try { const c = JSON.parse(msg.data)?.cursor; if (typeof c === 'string' && c) last = c; } catch { /* no position */ }
                  }
                  continue;
                }
                if (!msg.hasId || !msg.id) continue; // only events carry an id (their cursor)
                let event: Event;
                try { event = JSON.parse(msg.data) as Event; } catch { continue; }
                last = msg.id;
                yield event;
              }
            }
          }
        } catch (err) {
          if (stop.signal.aborted) return;
          if (err instanceof MailroomApiError) throw err;
          // A network error or a dropped connection: reconnect below.
        } finally {
          stop.signal.removeEventListener('abort', onStop);
          conn.abort();
        }
        if (stop.signal.aborted) return;
        try { await sleep(wait, stop.signal); } catch { return; }
        delay = Math.min(Math.max(delay, wait) * 2, MAX_RECONNECT_MS);
      }
    } finally {
      user?.removeEventListener('abort', onUserAbort);
      stop.abort();
    }
  }
}
