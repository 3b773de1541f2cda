import { allParts, type MimePart } from './mime.ts';

/**
 * The human-readable text of a report: its own text parts (not those of the returned original
 * message), HTML reduced to text when there is no plain part, and cut where the MTA starts quoting
 * the original message inline — past that point addresses and phrases belong to the original
 * message, not to the failure.
 */

// Lines with which MTAs introduce the returned message when they inline it into the text.
const ORIGINAL_MARKERS: RegExp[] = [
  /^-+ ?below this line is a copy of the message\.?/i,                   // qmail
  /^-+ ?this is a copy of the message,? including all the headers\.? ?-*/i, // Exim
  /^-+ ?original message follows ?-+/i,
  /^-+ ?(?:the )?original message(?: headers?)?(?: follows)? ?-+$/i,
  /^-+ ?(?:returned|original|undelivered|unsent) (?:mail|message)(?: follows)? ?-+$/i,
  /^-+ ?message (?:headers )?follows ?-+$/i,
  /^-+ ?(?:start of )?(?:the )?returned message ?-+$/i,
  /^-+ ?unsent message below ?-+$/i,
  /^-+ ?enclosed is a copy of the (?:request|message)\.?/i,
  /^-+ ?original message header ?-+$/i,
  /^original message headers?:?$/i,
  /^-+ ?headers of the original message ?-+$/i,
  /^-+ ?the header of the original message is following\.? ?-+$/i,
  /^content-type: message\/rfc822$/i,
  /^-+ ?forwarded message ?-+$/i,
  /^\s*-+ ?original message ?-+$/i,
  /^-+ ?(?:message|mail) text ?-+$/i,
  /^-+ ?rfc822 headers? ?-+$/i,
  /^-*\s*(?:original message|message headers?|the original message headers?|headers of the original message|unsent message) (?:follows?|are included below|below)\.?:?\s*-*$/i,
  /^-*\s*(?:included|enclosed|attached|below|following|here) is a copy of (?:the|your) (?:original )?message(?: header)?s?[.:]?\s*-*$/i,
];

// Fields that begin a quoted header block of the original message (see quotedHeaderStart).
const QUOTED_HEADER = /^(?:Return-Path|Received|X-Received|Message-I[dD]|DKIM-Signature|ARC-Seal|X-Originating-IP|Authentication-Results|Delivered-To|X-Original-To):[ \t]/;
const HEADER_OR_FOLD = /^(?:[A-Za-z][A-Za-z0-9-]*:[ \t]|[ \t]+\S)/;

/**
 * Where an unannounced copy of the original headers starts: a trace or id field (what a copied
 * header block begins with, unlike an MTA's "Subject:/Date:" summary) followed by more header lines.
 */
function quotedHeaderStart(lines: string[]): number {
  for (let i = 0; i + 1 < lines.length; i++) {
    if (QUOTED_HEADER.test(lines[i]) && HEADER_OR_FOLD.test(lines[i + 1]) && (i + 2 >= lines.length || HEADER_OR_FOLD.test(lines[i + 2]) || !lines[i + 2].trim())) return i;
  }
  return -1;
}

export function isOriginalMarker(line: string): boolean {
  const l = line.trim();
  return ORIGINAL_MARKERS.some((re) => re.test(l));
}

/** Very small HTML → text: enough to read what a provider's HTML-only bounce says. */
export function htmlToText(html: string): string {
  return html
    .replace(/<(script|style)[\s\S]*?<\/\1>/gi, ' ')
    .replace(/<br\s*\/?>|<\/(?:p|div|tr|li|h\d)>/gi, '\n')
    .replace(/<[^>]+>/g, ' ')
    .replace(/&nbsp;/gi, ' ')
    .replace(/&lt;/gi, '<')
    .replace(/&gt;/gi, '>')
    .replace(/&quot;/gi, '"')
    .replace(/&#39;|&apos;/gi, "'")
    .replace(/&amp;/gi, '&')
    .replace(/[ \t]+/g, ' ')
    .replace(/\n\s*\n+/g, '\n\n');
}

/** Text parts of the report itself, in order (message/delivery-status and the like excluded). */
export function reportTextParts(root: MimePart): MimePart[] {
  return allParts(root).filter((p) => !p.inMessage && !p.children.length && (p.contentType.startsWith('text/') && p.contentType !== 'text/rfc822-headers'));
}

/** Everything the report says in words, before any inline copy of the original message. */
export function reportText(root: MimePart): string {
  const parts = reportTextParts(root);
  const plain = parts.filter((p) => p.contentType !== 'text/html');
  const chosen = plain.some((p) => p.text.trim()) ? plain : parts;
  // Each part is cut on its own: a part that is only a copy of the original headers disappears,
  // and a marker in one part does not hide the parts after it.
  return chosen.map((p) => cutAtOriginal(p.contentType === 'text/html' ? htmlToText(p.text) : p.text)).join('\n');
}

export function cutAtOriginal(text: string): string {
  const lines = text.split('\n');
  const marker = lines.findIndex(isOriginalMarker);
  const quoted = quotedHeaderStart(marker >= 0 ? lines.slice(0, marker) : lines);
  const at = quoted >= 0 ? quoted : marker;
  return at >= 0 ? lines.slice(0, at).join('\n') : text;
}
