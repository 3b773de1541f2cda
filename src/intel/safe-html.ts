import sanitizeHtml from 'sanitize-html';
import { hiddenBy } from './hidden-html.ts';

/**
 * A received HTML body made safe to show a person, and honest about what it hides.
 *
 * sanitize-html (htmlparser2 underneath, the same parser the injection scorer uses) keeps an allow
 * list of presentational tags and attributes and drops everything else: scripts, event handlers,
 * iframes, objects, forms, <style> sheets, <base>, <meta refresh>. Every URL that would load
 * something (img/src, background, srcset, CSS url()) is removed — a remote image is a read receipt
 * for the sender and a beacon for an attacker — and links keep only http(s)/mailto targets and
 * open nowhere by themselves (they are inert text in a sandboxed frame).
 *
 * Hidden text is revealed, not removed: an element whose inline style hides it (hiddenBy, the rule
 * the injection scorer applies) or that carries `hidden` is made visible and marked with
 * `data-mailroom-hidden="<why>"` and a visible label, so a reviewer sees exactly the instructions a
 * model reading the raw HTML would see. Text hidden through a <style> sheet becomes visible simply
 * because sheets are dropped.
 *
 * This is one layer. The console also renders the result in an iframe with an empty `sandbox`
 * (no scripts, no same-origin) under a Content-Security-Policy that forbids every remote load.
 */

/** The style shown on a revealed element, and the label put before its text. */
const REVEALED_STYLE = 'display:block;visibility:visible;opacity:1;font-size:13px;color:#7a1010;background:#fff1f1;'
  + 'outline:2px dashed #c62828;position:static;height:auto;max-height:none;overflow:visible;clip:auto;text-indent:0;margin:4px 0;padding:4px';
export const HIDDEN_MARK = 'data-mailroom-hidden';

const ALLOWED_TAGS = [
  'a', 'abbr', 'address', 'b', 'bdi', 'bdo', 'blockquote', 'br', 'caption', 'center', 'cite', 'code', 'col', 'colgroup',
  'dd', 'del', 'dfn', 'div', 'dl', 'dt', 'em', 'font', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'hr', 'i', 'img', 'ins', 'kbd',
  'li', 'mark', 'ol', 'p', 'pre', 'q', 's', 'samp', 'small', 'span', 'strike', 'strong', 'sub', 'sup', 'table', 'tbody',
  'td', 'tfoot', 'th', 'thead', 'tr', 'tt', 'u', 'ul', 'var', 'label',
];

/** Properties that can reach the network (url(), image-set()) or escape the frame's layout. */
const UNSAFE_CSS = /url\s*\(|image-set\s*\(|expression\s*\(|@import|behavior\s*:|-moz-binding/i;

function cleanStyle(style: string): string {
  return style.split(';').map((d) => d.trim()).filter((d) => d && !UNSAFE_CSS.test(d) && !/^position\s*:\s*fixed/i.test(d)).join(';');
}

export interface SafeHtml { html: string; hidden: number }

export function safeHtml(html: string): SafeHtml {
  let hidden = 0;
  const reveal = (tagName: string, attribs: Record<string, string>, why: string) => {
    hidden++;
    const { hidden: _h, style: _s, ...rest } = attribs;
    return { tagName: tagName === 'span' || tagName === 'font' ? 'div' : tagName, attribs: { ...rest, style: REVEALED_STYLE, [HIDDEN_MARK]: why, title: `hidden in the original (${why})` } };
  };
  const out = sanitizeHtml(html, {
    allowedTags: ALLOWED_TAGS,
    // Presentation only; no id/name (they could target the console's own anchors), no event handlers.
    allowedAttributes: {
      '*': ['style', 'align', 'valign', 'dir', 'lang', 'title', 'width', 'height', 'bgcolor', 'color', 'border', 'cellpadding', 'cellspacing', 'colspan', 'rowspan', HIDDEN_MARK],
      a: ['href'],
      img: ['alt'],
      font: ['face', 'size', 'color'],
    },
    allowedSchemes: ['http', 'https', 'mailto'],
    allowedSchemesAppliedToAttributes: ['href'],
    allowProtocolRelative: false,
    // Dropped with their content: what they hold is code or metadata, never text meant for a reader.
    nonTextTags: ['script', 'style', 'textarea', 'option', 'noscript', 'title', 'head', 'xml', 'svg', 'math', 'template', 'iframe', 'object'],
    transformTags: {
      '*': (tagName, attribs) => {
        if (attribs.hidden !== undefined) return reveal(tagName, attribs, 'hidden attribute');
        if (attribs.style) {
          const why = hiddenBy(attribs.style);
          if (why) return reveal(tagName, attribs, why);
          return { tagName, attribs: { ...attribs, style: cleanStyle(attribs.style) } };
        }
        return { tagName, attribs };
      },
      // An image keeps its place and its alt text, never its source.
      img: (_tagName, attribs) => ({ tagName: 'span', text: attribs.alt ? `[image: ${attribs.alt}]` : '[image]', attribs: { title: 'remote image not loaded' } }),
    },
  });
  // A label in front of each revealed element's content (added after sanitising, so it is ours).
  const labelled = out.replace(new RegExp(`(<[a-z0-9]+[^>]*\\s${HIDDEN_MARK}="([^"]*)"[^>]*>)`, 'g'),
    (_m, open: string, why: string) => `${open}<strong style="display:block;font-size:11px;color:#c62828">HIDDEN TEXT (${why}):</strong>`);
  return { html: labelled, hidden };
}
