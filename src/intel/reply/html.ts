/**
 * HTML replies: drop the quoted history containers, then convert what is left to plain text.
 *
 * Removed before converting:
 * - every <blockquote> (covers Apple Mail / Thunderbird `blockquote[type=cite]` and Gmail's inner quote);
 * - Gmail's `div.gmail_quote` (also holds the "On … wrote:" attribution) and Yahoo's `yahoo_quoted`;
 * - Outlook's `div#appendonsend` and `div#divRplyFwdMsg` together with everything after them in their
 *   parent (Outlook puts the header block and the quoted body as following siblings, often after an <hr>).
 */
import { convert } from 'html-to-text';
import { DomUtils, parseDocument } from 'htmlparser2';

type DomNode = ReturnType<typeof parseDocument>['children'][number];
type DomElement = Extract<DomNode, { name: string; attribs: Record<string, string> }>;

const isElement = (n: DomNode): n is DomElement => (n as { type?: string }).type === 'tag' || (n as { type?: string }).type === 'script' || (n as { type?: string }).type === 'style';

function hasClass(el: DomElement, cls: string): boolean {
  return (el.attribs.class ?? '').split(/\s+/).includes(cls);
}

function removeWithFollowing(el: DomElement): void {
  let next = el.next;
  while (next) {
    const after = next.next;
    DomUtils.removeElement(next);
    next = after;
  }
  const prev = el.prev;
  if (prev && isElement(prev) && prev.name === 'hr') DomUtils.removeElement(prev);
  DomUtils.removeElement(el);
}

/** Remove quote containers from the HTML and return the remaining HTML. */
export function stripHtmlQuotes(html: string): string {
  const doc = parseDocument(html);
  const all = DomUtils.findAll(() => true, doc.children) as DomElement[];
  const cutAfter: DomElement[] = [];
  const drop: DomElement[] = [];
  for (const el of all) {
    const id = el.attribs.id ?? '';
    if (id === 'appendonsend' || id === 'divRplyFwdMsg') cutAfter.push(el);
    else if (el.name === 'blockquote' || hasClass(el, 'gmail_quote') || hasClass(el, 'yahoo_quoted')) drop.push(el);
  }
  // Outlook cut first (only the first marker counts; the others are inside the removed part)
  if (cutAfter.length > 0) removeWithFollowing(cutAfter[0]);
  for (const el of drop) if (el.parent) DomUtils.removeElement(el);
  return DomUtils.getOuterHTML(doc);
}

/** Convert (quote-stripped) HTML to plain text. */
export function htmlToPlainText(html: string): string {
  const text = convert(html, {
    wordwrap: false,
    selectors: [
      { selector: 'a', options: { ignoreHref: true } },
      { selector: 'img', format: 'skip' },
      { selector: 'hr', format: 'skip' },
    ],
  });
  // tidy: no trailing blanks, at most one empty line in a row
  return text
    .split('\n')
    .map((l) => l.replace(/[\t\p{Zs}]+$/u, ''))
    .join('\n')
    .replace(/\n{3,}/g, '\n\n');
}

export function htmlReplyToText(html: string): string {
  return htmlToPlainText(stripHtmlQuotes(html));
}
