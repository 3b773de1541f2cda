import addressparser from 'nodemailer/lib/addressparser/index.js';
import { allParts, decodeHeaderValue, headerValue, parseHeaderBlock, type HeaderField, type MimePart } from './mime.ts';
import { isOriginalMarker } from './report-text.ts';
import type { OriginalMessage } from './types.ts';

/**
 * What a report tells about the message that failed: its headers, taken from the returned
 * message/rfc822 part, a text/rfc822-headers part, or — for MTAs that paste the original into the
 * text — the header block after the "copy of the message follows" line.
 */

const EMPTY: OriginalMessage = { message_id: null, from: null, to: null, subject: null, return_path: null };

// Fields that show a header block really is a message's header (and not a stray "Subject:" line).
const MESSAGE_FIELDS = new Set(['from', 'to', 'subject', 'message-id', 'date', 'received', 'return-path', 'mime-version']);

function addresses(value: string | null): string | null {
  if (!value) return null;
  try {
    const list = addressparser(decodeHeaderValue(value), { flatten: true })
      .map((a) => (a.address ?? '').toLowerCase().trim())
      .filter((a) => a.includes('@'));
    return list.length ? [...new Set(list)].join(', ') : null;
  } catch {
    return null;
  }
}

function messageId(value: string | null): string | null {
  if (!value) return null;
  const m = /<[^<>\s]+>/.exec(value) ?? /[^<>\s]+@[^<>\s]+/.exec(value);
  if (!m) return null;
  return m[0].startsWith('<') ? m[0] : `<${m[0]}>`;
}

function fromHeaders(h: HeaderField[]): OriginalMessage {
  const subject = headerValue(h, 'subject');
  return {
    message_id: messageId(headerValue(h, 'message-id')),
    from: addresses(headerValue(h, 'from')),
    to: addresses(headerValue(h, 'to')),
    subject: subject === null ? null : decodeHeaderValue(subject).trim(),
    return_path: addresses(headerValue(h, 'return-path')),
  };
}

const looksLikeMessageHeader = (h: HeaderField[]): boolean => h.filter((f) => MESSAGE_FIELDS.has(f.name)).length >= 2;

/** The header block pasted into a text body after an original-message marker (or anywhere, as a fallback). */
function quotedHeaders(text: string): HeaderField[] | null {
  const lines = text.split('\n');
  const marker = lines.findIndex(isOriginalMarker);
  const starts = marker >= 0 ? [marker + 1] : [];
  // Without a marker, try each line that starts a "Name: value" run containing message fields.
  for (let i = 0; i < lines.length && starts.length < 50; i++) if (/^(?:return-path|received|message-id|from|date|to|subject):/i.test(lines[i])) starts.push(i);
  for (const s of starts) {
    let i = s;
    while (i < lines.length && !lines[i].trim()) i++;
    const block: string[] = [];
    for (; i < lines.length && lines[i].trim(); i++) block.push(lines[i].replace(/^\s*>\s?/, '').replace(/^\s{1,4}(?=[A-Za-z-]+:)/, ''));
    const h = parseHeaderBlock(block.join('\n'));
    if (looksLikeMessageHeader(h) && (headerValue(h, 'from') || headerValue(h, 'message-id') || headerValue(h, 'to'))) return h;
  }
  return null;
}

export function originalMessage(root: MimePart, reportText: string): OriginalMessage {
  for (const p of allParts(root)) {
    if (p.inMessage) {
      // The first entity inside a message/rfc822 part that has message headers is the returned message.
      if (looksLikeMessageHeader(p.headers)) return fromHeaders(p.headers);
      continue;
    }
    if (p.contentType === 'text/rfc822-headers') {
      const h = parseHeaderBlock(p.text.replace(/^\n+/, ''));
      if (looksLikeMessageHeader(h)) return fromHeaders(h);
    }
  }
  const all = allParts(root).filter((p) => !p.inMessage && p.text).map((p) => p.text).join('\n');
  const quoted = quotedHeaders(all) ?? quotedHeaders(reportText);
  return quoted ? fromHeaders(quoted) : { ...EMPTY };
}
