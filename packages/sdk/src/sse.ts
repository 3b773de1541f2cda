/**
 * A Server-Sent Events parser over a fetch body, following the WHATWG event-stream rules: lines end
 * in CRLF, LF or CR; a blank line dispatches; `:` starts a comment; `data` lines join with "\n";
 * `id` persists across events (the last event id); a leading BOM is dropped. No EventSource, so
 * it runs anywhere fetch does and can send an Authorization header.
 */

export interface SseMessage {
  /** The stream's last event id at this message (persists across messages, per the spec). */
  id: string | undefined;
  /** Whether this message itself carried an id field. */
  hasId: boolean;
  event: string;
  data: string;
  retry?: number;
}

export class SseParser {
  #buf = '';
  #sawBom = false;
  #pendingCR = false;
  #data: string[] = [];
  #event = '';
  #hasId = false;
  #retry: number | undefined;
  lastEventId: string | undefined;

  /** Feeds decoded text; returns the messages it completed. */
  push(chunk: string): SseMessage[] {
    if (!this.#sawBom && chunk.length) {
      this.#sawBom = true;
      if (chunk.charCodeAt(0) === 0xfeff) chunk = chunk.slice(1);
    }
    // A CR at the end of the previous chunk already ended its line: a LF right after it is the same line end.
    if (this.#pendingCR && chunk.startsWith('\n')) chunk = chunk.slice(1);
    this.#pendingCR = false;
    this.#buf += chunk;
    const out: SseMessage[] = [];
    let start = 0;
    for (let i = 0; i < this.#buf.length; i++) {
      const c = this.#buf.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      const line = this.#buf.slice(start, i);
      if (c === 13) {
        if (i + 1 < this.#buf.length) { if (this.#buf.charCodeAt(i + 1) === 10) i++; }
        else this.#pendingCR = true;
      }
      start = i + 1;
      const msg = this.#line(line);
      if (msg) out.push(msg);
    }
    this.#buf = this.#buf.slice(start);
    return out;
  }

  #line(line: string): SseMessage | null {
    if (line === '') return this.#dispatch();
    if (line.startsWith(':')) return null;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'data': this.#data.push(value); break;
      case 'event': this.#event = value; break;
      case 'id': if (!value.includes('\u0000')) { this.lastEventId = value; this.#hasId = true; } break;
      case 'retry': if (/^\d+$/.test(value)) this.#retry = Number(value); break;
      default: break;
    }
    return null;
  }

  #dispatch(): SseMessage | null {
    const hasData = this.#data.length > 0;
    const msg: SseMessage = { id: this.lastEventId, hasId: this.#hasId, event: this.#event || 'message', data: this.#data.join('\n') };
    if (this.#retry !== undefined) msg.retry = this.#retry;
    this.#data = [];
    this.#event = '';
    this.#hasId = false;
    this.#retry = undefined;
    return hasData ? msg : null;
  }
}
