/**
 * Reply extraction for received email: the new part of a reply, without quoted history,
 * signatures and forwarded blocks. Pure functions, no I/O.
 *
 * The text algorithm is a port of Discourse's email_reply_trimmer (MIT); see trim.ts and NOTICE.md.
 */
import { htmlReplyToText } from './html.ts';
import { trimReply } from './trim.ts';

export { trimReply, linePattern, identifyLine } from './trim.ts';
export { stripHtmlQuotes, htmlToPlainText, htmlReplyToText } from './html.ts';

export interface ExtractedReply {
  text: string;
  /** which body part the reply came from: the text/plain part, the text/html part, or neither */
  method: 'text' | 'html' | 'none';
}

const blank = (s: string | null | undefined): boolean => s == null || /^\s*$/.test(s);

/**
 * Extract the reply. Prefers the text/plain part; falls back to the HTML part (quote containers
 * removed, converted to text, then trimmed like plain text) when there is no usable text part.
 */
export function extractReply(text: string | null, html: string | null): ExtractedReply {
  if (!blank(text)) {
    const trimmed = trimReply(text);
    if (trimmed !== '' || blank(html)) return { text: trimmed, method: 'text' };
  }
  if (!blank(html)) {
    const trimmed = trimReply(htmlReplyToText(html as string));
    return { text: trimmed, method: 'html' };
  }
  return { text: '', method: 'none' };
}
