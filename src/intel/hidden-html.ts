import { Parser } from 'htmlparser2';

/**
 * The text of an HTML body that a person does not see but a model reading the HTML (or a naive
 * HTML-to-text) does: elements hidden by style (display:none, visibility:hidden, zero or tiny font,
 * opacity 0, text coloured like its background, pushed off-screen, clipped to nothing), the
 * `hidden` attribute, comments, and alt/title attributes. htmlparser2 streams (linear time, no DOM),
 * never fetches anything, and a 10,000-deep nesting costs a 10,000-entry stack.
 */
export interface HiddenText { how: string; text: string }

const VOID = new Set(['area', 'base', 'br', 'col', 'embed', 'hr', 'img', 'input', 'link', 'meta', 'source', 'track', 'wbr']);

const norm = (s: string) => s.toLowerCase().replace(/\s+/g, '');

/** Why an element's style hides it, or null. */
export function hiddenBy(style: string): string | null {
  const s = norm(style);
  if (/display:none/.test(s)) return 'display:none';
  if (/visibility:(hidden|collapse)/.test(s)) return 'visibility:hidden';
  if (/opacity:0(\.0+)?(;|$|!)/.test(s)) return 'opacity:0';
  const size = /font-size:(\d*\.?\d+)(px|pt|em|rem|%)?/.exec(s);
  if (size) {
    const v = Number(size[1]);
    const unit = size[2] ?? 'px';
    if (v === 0 || (unit === 'px' && v <= 2) || (unit === 'pt' && v <= 1.5) || ((unit === 'em' || unit === 'rem') && v <= 0.15) || (unit === '%' && v <= 15)) return 'tiny font';
  }
  if (/(^|;)(left|top|text-indent|margin-left|margin-top):-\d{3,}/.test(s)) return 'off-screen';
  if (/(max-)?height:0(px)?(;|$)/.test(s) && /overflow:hidden/.test(s)) return 'zero height';
  if (/clip:rect\(0(px)?,?0(px)?,?0(px)?,?0(px)?\)/.test(s)) return 'clipped';
  const color = /(^|;)color:([^;!]+)/.exec(s)?.[2];
  const bg = /background(-color)?:([^;!]+)/.exec(s)?.[2];
  if (color && bg && color === bg) return 'text colour = background';
  if (color && /^(#fff(fff)?|white|rgba?\(255,255,255(,1)?\))$/.test(color) && !bg) return 'white text';
  if (color && /transparent|rgba\(\d+,\d+,\d+,0(\.0+)?\)/.test(color)) return 'transparent text';
  return null;
}

export function hiddenHtmlText(html: string, maxChars = 2_000_000): HiddenText[] {
  const out: HiddenText[] = [];
  const stack: (string | null)[] = []; // per open element: why it hides its content, or null
  const tags: string[] = [];
  let hiddenDepth = 0;
  let current: { how: string; text: string } | null = null;
  const flush = () => {
    if (current && current.text.trim()) out.push({ how: current.how, text: current.text.replace(/\s+/g, ' ').trim().slice(0, 2000) });
    current = null;
  };
  const parser = new Parser({
    onopentag(name, attrs) {
      const why = attrs.hidden !== undefined ? 'hidden attribute' : attrs.style ? hiddenBy(attrs.style) : null;
      for (const a of ['alt', 'title'] as const) {
        if (attrs[a] && attrs[a].trim().length > 0) out.push({ how: `${a} attribute`, text: attrs[a].slice(0, 2000) });
      }
      if (VOID.has(name)) return;
      tags.push(name);
      stack.push(why);
      if (why) {
        if (hiddenDepth === 0) { flush(); current = { how: why, text: '' }; }
        hiddenDepth++;
      }
    },
    ontext(text) {
      if (hiddenDepth > 0 && current) current.text += text;
    },
    onclosetag(name) {
      if (VOID.has(name)) return;
      // Unbalanced HTML: close up to the matching open tag, as browsers do.
      const at = tags.lastIndexOf(name);
      if (at < 0) return;
      while (tags.length > at) {
        tags.pop();
        if (stack.pop()) {
          hiddenDepth--;
          if (hiddenDepth === 0) flush();
        }
      }
    },
    oncomment(text) {
      // Outlook's conditional comments ([if gte mso 9]<xml>…) mostly carry Office markup, and
      // every Outlook-composed message has them: named apart so that only an instruction inside
      // one counts, not their mere presence.
      const how = /^\s*\[(?:if|endif)\b/i.test(text) ? 'conditional comment' : 'HTML comment';
      if (text.trim()) out.push({ how, text: text.replace(/\s+/g, ' ').trim().slice(0, 2000) });
    },
  }, { decodeEntities: true, lowerCaseTags: true, lowerCaseAttributeNames: true });
  parser.write(html.length > maxChars ? html.slice(0, maxChars) : html);
  parser.end();
  flush();
  return out;
}
