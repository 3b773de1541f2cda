/**
 * Personalization templates: `{{ first_name }}`, `{{ first_name | there }}`, `{{ fields.plan }}`,
 * `{{ notes.hook }}`, `{{ crm.industry }}`. Variables and fallbacks, nothing else: no logic, no
 * loops, no partials, no triple braces. Hand-written rather than Mustache or Handlebars because
 * neither offers a fallback without a logic block (`{{#x}}{{x}}{{/x}}{{^x}}there{{/x}}`), which is
 * exactly what campaign authors get wrong; and because the one rule that matters here is easy to
 * hold in forty lines: a value is inserted once and never read as template again (one pass over
 * the template, values go straight to the output), so a lead whose company is "{{crm.secret}}"
 * renders that text literally.
 *
 * A tag is `{{`, anything without braces, `}}`. Inside: a name (letters, digits, `_`, `-`,
 * dot-separated for paths) and optionally `|` and a fallback (the rest, trimmed; it is template
 * text, written by the author, so it is not escaped; `{{ x | }}` is an explicit empty fallback:
 * optional, never reported missing). A tag whose inside is not a name (`{{ }}`, `{{ a b }}`) is left
 * as written, so a typo shows in a preview instead of vanishing silently. The scan is one linear
 * regex (`[^{}]*` cannot backtrack into a neighbouring tag).
 */

export type TemplateEscape = 'html' | 'none';
export interface RenderOptions { escape?: TemplateEscape }
export interface RenderResult {
  text: string;
  /** Names used without a value and without a fallback (rendered empty), in order of first use. */
  missing: string[];
}

const TAG = /\{\{([^{}]*)\}\}/g;
const NAME = /^[A-Za-z_][\w-]*(?:\.[A-Za-z0-9_][\w-]*)*$/;

interface Tag { name: string; fallback: string | null }

function parseTag(inner: string): Tag | null {
  const bar = inner.indexOf('|');
  const name = (bar < 0 ? inner : inner.slice(0, bar)).trim();
  if (!NAME.test(name)) return null;
  return { name, fallback: bar < 0 ? null : inner.slice(bar + 1).trim() };
}

/**
 * The value at a dotted path, own properties only: `{{ constructor }}` or `{{ a.__proto__ }}`
 * must not reach into Object.prototype.
 */
export function lookupPath(vars: Record<string, unknown>, path: string): unknown {
  let cur: unknown = vars;
  for (const key of path.split('.')) {
    if (cur === null || typeof cur !== 'object' || !Object.hasOwn(cur, key)) return undefined;
    cur = (cur as Record<string, unknown>)[key];
  }
  return cur;
}

/** A value as template text, or null when it counts as missing (absent, blank, not a scalar). */
function asText(v: unknown): string | null {
  let s: string;
  if (typeof v === 'string') s = v;
  else if (typeof v === 'number') {
    if (!Number.isFinite(v)) return null;
    s = String(v);
  } else if (typeof v === 'bigint' || typeof v === 'boolean') s = String(v);
  // Objects, arrays, dates, functions: "[object Object]" in a prospect's inbox is worse than the fallback.
  else return null;
  s = s.trim();
  return s === '' ? null : s;
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);
}

export function renderTemplate(tpl: string, vars: Record<string, unknown>, opts: RenderOptions = {}): RenderResult {
  const missing = new Set<string>();
  const text = tpl.replace(TAG, (whole, inner: string) => {
    const tag = parseTag(inner);
    if (!tag) return whole;
    const value = asText(lookupPath(vars, tag.name));
    if (value !== null) return opts.escape === 'html' ? escapeHtml(value) : value;
    if (tag.fallback !== null) return tag.fallback;
    missing.add(tag.name);
    return '';
  });
  return { text, missing: [...missing] };
}

/**
 * Whitespace of every kind (CR, LF, tabs, NEL, Unicode line and paragraph separators) and other
 * control characters, as one space: a subject is one header line, and a value with a line break
 * must not be able to end it and start another header.
 */
export function collapseWhitespace(s: string): string {
  return s.replace(/[\s\u0085\u0000-\u001f\u007f]+/g, ' ').trim();
}

/** A subject line: rendered without escaping, then collapsed to one line. */
export function renderSubject(tpl: string, vars: Record<string, unknown>): RenderResult {
  const r = renderTemplate(tpl, vars, { escape: 'none' });
  return { text: collapseWhitespace(r.text), missing: r.missing };
}

/** The names a template uses (each once, in order of first use), fallbacks or not. */
export function templateVariables(tpl: string): string[] {
  const names = new Set<string>();
  for (const m of tpl.matchAll(TAG)) {
    const tag = parseTag(m[1]);
    if (tag) names.add(tag.name);
  }
  return [...names];
}
