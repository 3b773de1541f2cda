/**
 * Plain-text reply trimming: keeps the new part of a reply and drops quoted history, signatures,
 * delimiters and embedded (forwarded / "On … wrote:") emails.
 *
 * A TypeScript port of Discourse's email_reply_trimmer (Ruby, MIT licence, © Discourse),
 * https://github.com/discourse/email_reply_trimmer, lib/email_reply_trimmer.rb (v0.2.0). See NOTICE.md.
 *
 * Each line is classified into one letter (d delimiter, s signature, b embedded-email marker,
 * e empty, h email header, q quote, t text), and the cuts are made on that pattern string. The Ruby
 * original does the cuts with regular expressions on the pattern; here each one is a hand-written
 * linear scan with the same result, so no input (e.g. 500 000 quote lines) can trigger quadratic
 * backtracking. Whole-text preprocessing is likewise done line by line on bounded windows.
 */
import {
  DATE_SOMEONE_EMAIL_REGEX,
  DATE_SOMEONE_WROTE_REGEXES,
  MAX_MARKER_LINE,
  ON_DATE_SOMEONE_WROTE_REGEXES,
  SOMEONE_WROTE_ON_DATE_MULTILINE_REGEXES,
  isDelimiter,
  isEmailHeader,
  isEmbeddedEmail,
  isEmptyLine,
  isQuote,
  isSignature,
} from './matchers.ts';

export type LineKind = 'd' | 'b' | 'e' | 'h' | 'q' | 's' | 't';

export function identifyLine(line: string): LineKind {
  if (isEmptyLine(line)) return 'e';
  if (isDelimiter(line)) return 'd';
  if (isSignature(line)) return 's';
  if (isEmbeddedEmail(line)) return 'b';
  if (isEmailHeader(line)) return 'h';
  if (isQuote(line)) return 'q';
  return 't';
}

/** Ruby's String#strip (ASCII whitespace and NUL only). */
export function rubyStrip(s: string): string {
  return s.replace(/^[\t\n\v\f\r \0]+/, '').replace(/[\t\n\v\f\r \0]+$/, '');
}

// --- preprocessing -------------------------------------------------------------------------------

const ENCLOSED_OPEN = /^>>> ?(.+) ?>>>$/;
const ENCLOSED_CLOSE = /^<<< ?(.+) ?<<<$/;
const ANGLE_OPEN = /^>{4,}[\t\p{Zs}]*$/u;
const ANGLE_CLOSE = /^<{4,}[\t\p{Zs}]*$/u;

/**
 * Ruby: text.gsub!(/^>>> ?(.+) ?>>>$\n([\s\S]+?)\n^<<< ?\1 ?<<<$/) { $2.gsub(/^/, "> ") } and the
 * `>>>>` / `<<<<` variant, done on lines: an opener, then the nearest matching closer at least two
 * lines later; the lines between get a "> " prefix and the opener/closer lines go.
 */
function convertEnclosedQuotes(lines: string[]): string[] {
  const n = lines.length;
  // nearest closer index at or after i, per kind (name-keyed closers for the named form)
  const nextAngle = new Array<number>(n + 1).fill(-1);
  for (let i = n - 1; i >= 0; i--) nextAngle[i] = ANGLE_CLOSE.test(lines[i]) ? i : nextAngle[i + 1];
  const namedClosers = new Map<string, number[]>();
  for (let i = 0; i < n; i++) {
    const m = ENCLOSED_CLOSE.exec(lines[i]);
    if (m) {
      const key = m[1].trim();
      const list = namedClosers.get(key) ?? [];
      list.push(i);
      namedClosers.set(key, list);
    }
  }
  const firstAfter = (list: number[], from: number): number => {
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid] < from) lo = mid + 1;
      else hi = mid;
    }
    return lo < list.length ? list[lo] : -1;
  };
  const out: string[] = [];
  let i = 0;
  while (i < n) {
    const line = lines[i];
    let close = -1;
    const named = ENCLOSED_OPEN.exec(line);
    if (named) {
      const list = namedClosers.get(named[1].trim());
      if (list) close = firstAfter(list, i + 2);
    }
    if (close < 0 && ANGLE_OPEN.test(line) && i + 2 <= n) close = nextAngle[i + 2] ?? -1;
    if (close > i + 1) {
      for (let k = i + 1; k < close; k++) out.push(`> ${lines[k]}`);
      i = close + 1;
      continue;
    }
    out.push(line);
    i++;
  }
  return out;
}

/** Each marker regex with a cheap test that the first line of a match must pass. */
const MULTILINE_MARKER_REGEXES: Array<[RegExp, RegExp]> = [
  ...ON_DATE_SOMEONE_WROTE_REGEXES.map((r): [RegExp, RegExp] => {
    const head = r.source.slice(0, r.source.indexOf(' (?:(?!') + 1);
    return [r, new RegExp(head, 'iu')];
  }),
  [SOMEONE_WROTE_ON_DATE_MULTILINE_REGEXES[0], /\bwrote\b/u],
  [SOMEONE_WROTE_ON_DATE_MULTILINE_REGEXES[1], /\bschrieb\b/u],
  ...[...DATE_SOMEONE_WROTE_REGEXES, DATE_SOMEONE_EMAIL_REGEX].map((r): [RegExp, RegExp] => [r, /\d{4}./u]),
];
const WINDOW_LINES = 5; // a marker may span at most 5 lines (at most 4 line breaks)

/**
 * Ruby: for each marker regex, text.gsub!(r) { |m| m.count("\n") > 4 ? m : m.gsub(newline-run-and-following-space, " ") }.
 * Done on windows of up to 5 short lines starting at each line, so the cost stays linear.
 */
function joinMultilineMarkers(lines: string[]): string[] {
  for (const [g, first] of MULTILINE_MARKER_REGEXES) {
    for (let i = 0; i < lines.length; i++) {
      if (lines[i].length > MAX_MARKER_LINE || !first.test(lines[i])) continue;
      let end = i;
      while (end + 1 < lines.length && end + 1 < i + WINDOW_LINES && lines[end + 1].length <= MAX_MARKER_LINE) end++;
      if (end === i) continue; // nothing to join
      const window = lines.slice(i, end + 1).join('\n');
      const m = g.exec(window);
      if (!m || m.index > lines[i].length) continue;
      const matched = m[0];
      if (!matched.includes('\n')) continue;
      const joined = matched.replace(/\n+\s*/g, ' ');
      const merged = window.slice(0, m.index) + joined + window.slice(m.index + matched.length);
      const mergedLines = merged.split('\n');
      lines.splice(i, end - i + 1, ...mergedLines);
    }
  }
  return lines;
}

const QUOTE_PREFIX = /^((?:[\t\p{Zs}]*\p{L}*[>|])+)/gmu;

function preprocess(input: string): string {
  let text = input.replace(/\r\n/g, '\n');
  // remove PGP markers
  text = text.replace(/^-----BEGIN PGP SIGNED MESSAGE-----\n(?:Hash: \w+)?\s+/i, '');
  const pgpStart = text.search(/^-----BEGIN PGP SIGNATURE-----$/m);
  if (pgpStart >= 0) {
    const endMarker = '-----END PGP SIGNATURE-----';
    const endIdx = text.lastIndexOf(`\n${endMarker}`);
    if (endIdx > pgpStart) text = text.slice(0, pgpStart) + text.slice(endIdx + 1 + endMarker.length);
  }
  let lines = text.split('\n');
  // remove unsubscribe links (only at the very end of the text)
  for (let i = Math.max(0, lines.length - 40); i < lines.length; i++) {
    if (/^Unsubscribe: .+@.+/i.test(lines[i])) {
      const rest = lines.slice(i + 1);
      const restOk =
        rest.every((l) => /^\s*$/.test(l)) ||
        (/^.+http:.+/.test(rest[0] ?? '') && rest.slice(1).every((l) => /^\s*$/.test(l)));
      if (restOk) {
        lines = lines.slice(0, i).concat(['']);
        break;
      }
    }
  }
  // remove alias-style quotes marker, e.g. `>>>>> "Foo" == Foo Bar writes:`
  lines = lines.map((l) => (l.length <= MAX_MARKER_LINE ? l.replace(/^.*>{5} "[^"\n]+" == .+ writes:/, '') : l));
  // change enclosed-style quotes format
  lines = convertEnclosedQuotes(lines);
  // fix all quotes formats ("foo>", "|" → ">")
  lines = lines.map((l) =>
    l.replace(QUOTE_PREFIX, (prefix: string) => prefix.replace(/(\p{L}+>|\|)/gu, '>')),
  );
  // fix embedded email markers that might span over multiple lines
  lines = joinMultilineMarkers(lines);
  return rubyStrip(lines.join('\n'));
}

// --- code blocks ---------------------------------------------------------------------------------

/** Ruby: text.gsub!(/^```\w*$\n.*?^```$/m) { token }, done on lines. */
function hoistCodeBlocks(lines: string[]): { lines: string[]; blocks: Map<string, string> } {
  const blocks = new Map<string, string>();
  const n = lines.length;
  const nextFence = new Array<number>(n + 1).fill(-1);
  for (let i = n - 1; i >= 0; i--) nextFence[i] = lines[i] === '```' ? i : nextFence[i + 1];
  const out: string[] = [];
  let i = 0;
  let counter = 0;
  const salt = Math.random().toString(36).slice(2, 10);
  while (i < n) {
    if (/^```\w*$/.test(lines[i]) && i + 1 < n && nextFence[i + 1] >= 0) {
      const close = nextFence[i + 1];
      const token = `codeblock${salt}x${counter++}`;
      blocks.set(token, lines.slice(i, close + 1).join('\n'));
      out.push(token);
      i = close + 1;
      continue;
    }
    out.push(lines[i]);
    i++;
  }
  return { lines: out, blocks };
}

// --- the pattern cuts ----------------------------------------------------------------------------

function removeKind(p: LineKind[], lines: string[], kind: LineKind): void {
  let w = 0;
  for (let r = 0; r < p.length; r++) {
    if (p[r] === kind) continue;
    p[w] = p[r];
    lines[w] = lines[r];
    w++;
  }
  p.length = w;
  lines.length = w;
}

function truncate(p: LineKind[], lines: string[], length: number): void {
  p.length = length;
  lines.length = length;
}

/** next[i] = first index ≥ i whose kind is not in `skip` (p.length when none). */
function nextNot(p: LineKind[], skip: string): Int32Array {
  const next = new Int32Array(p.length + 1);
  next[p.length] = p.length;
  for (let i = p.length - 1; i >= 0; i--) next[i] = skip.includes(p[i]) ? next[i + 1] : i;
  return next;
}

/** Start of the longest suffix whose kinds are all in `set`. */
function suffixStart(p: LineKind[], set: string): number {
  let k = p.length;
  while (k > 0 && set.includes(p[k - 1])) k--;
  return k;
}

/** Ruby /te*b[^q]*$/ — leftmost start index, or -1. */
function findTextThenMarkerWithoutQuote(p: LineKind[]): number {
  const lastQ = p.lastIndexOf('q');
  const next = nextNot(p, 'e');
  for (let i = lastQ + 1; i < p.length; i++) {
    if (p[i] === 't' && p[next[i + 1]] === 'b') return i;
  }
  return -1;
}

/** Ruby /te*b[eqbh]*([te]*)$/ — leftmost start and the number of t in the capture, or null. */
function findTextThenMarkerThenQuote(p: LineKind[]): { index: number; texts: number } | null {
  const nextE = nextNot(p, 'e');
  const nextEqbh = nextNot(p, 'eqbh');
  const teFrom = suffixStart(p, 'te');
  for (let i = 0; i < p.length; i++) {
    if (p[i] !== 't') continue;
    const j = nextE[i + 1];
    if (p[j] !== 'b') continue;
    const k = nextEqbh[j + 1];
    if (k >= teFrom) {
      let texts = 0;
      for (let x = k; x < p.length; x++) if (p[x] === 't') texts++;
      return { index: i, texts };
    }
  }
  return null;
}

/** Ruby /t?e*[qbe]+$/ — leftmost start, or -1. */
function findTrailingQuoteBlock(p: LineKind[]): number {
  const k = suffixStart(p, 'qbe');
  if (k === p.length) return -1;
  return k > 0 && p[k - 1] === 't' ? k - 1 : k;
}

/** Ruby /h+[hte]+h+e/ — [start, end] inclusive of the leftmost match, or null. */
function findMultilineHeaders(p: LineKind[]): [number, number] | null {
  let i = 0;
  while (i < p.length) {
    if (!'hte'.includes(p[i])) {
      i++;
      continue;
    }
    let end = i;
    while (end < p.length && 'hte'.includes(p[end])) end++;
    // run [i, end); first h in it, last "he" pair in it
    let firstH = -1;
    for (let x = i; x < end; x++) if (p[x] === 'h') { firstH = x; break; }
    let lastE = -1;
    for (let x = end - 1; x > i; x--) if (p[x] === 'e' && p[x - 1] === 'h') { lastE = x; break; }
    if (firstH >= 0 && lastE >= 0 && lastE - 1 >= firstH + 2) return [firstH, lastE];
    i = end;
  }
  return null;
}

/** Ruby /t[eq]*h{3,}/ — leftmost start, or -1. */
function findTextThenHeaders(p: LineKind[]): number {
  const next = nextNot(p, 'eq');
  for (let i = 0; i < p.length; i++) {
    if (p[i] !== 't') continue;
    const j = next[i + 1];
    if (p[j] === 'h' && p[j + 1] === 'h' && p[j + 2] === 'h') return i;
  }
  return -1;
}

/** Ruby /^b[^t]+t[et]*$/ — index of the first t when the reply is at the end, or -1. */
function replyAtEnd(p: LineKind[]): number {
  if (p[0] !== 'b') return -1;
  const firstT = p.indexOf('t');
  if (firstT < 2) return -1;
  for (let x = firstT + 1; x < p.length; x++) if (p[x] !== 'e' && p[x] !== 't') return -1;
  return firstT;
}

/** The pattern string of a text, one letter per line (for debugging and tests). */
export function linePattern(text: string): string {
  return preprocess(text).split('\n').map(identifyLine).join('');
}

/** Trim a plain-text email body down to its new reply text. Returns "" for an empty body. */
export function trimReply(input: string | null | undefined): string {
  if (input == null || /^\s*$/.test(input)) return '';
  const text = preprocess(input);
  const hoisted = hoistCodeBlocks(text.split('\n'));
  const lines = hoisted.lines;
  const p: LineKind[] = lines.map(identifyLine);

  // remove everything after the first delimiter
  const d = p.indexOf('d');
  if (d >= 0) truncate(p, lines, d);

  // remove all mobile signatures
  removeKind(p, lines, 's');

  // when the reply is at the end of the email
  // (Ruby empties the pattern here, so none of the later cuts apply: finish right away)
  const atEnd = replyAtEnd(p);
  if (atEnd >= 0) return restoreBlocks(rubyStrip(lines.slice(atEnd).join('\n')), hoisted.blocks);

  // an embedded email marker not followed by a quote: take everything up to that marker
  const a = findTextThenMarkerWithoutQuote(p);
  if (a >= 0) truncate(p, lines, a + 1);

  // an embedded email marker followed by a huge quote: take everything up to that marker
  const b = findTextThenMarkerThenQuote(p);
  if (b && b.texts < 7) truncate(p, lines, b.index + 1);

  // some text before a huge quote ending the email: remove the quote
  const c = findTrailingQuoteBlock(p);
  if (c >= 0) truncate(p, lines, c + 1);

  // remaining embedded email markers: remove them
  removeKind(p, lines, 'b');

  // email headers spanning over multiple lines
  const mh = findMultilineHeaders(p);
  if (mh) for (let x = mh[0]; x <= mh[1]; x++) p[x] = 'h';

  // at least 3 consecutive email headers: take everything up to these headers
  const h = findTextThenHeaders(p);
  if (h >= 0) truncate(p, lines, h + 1);

  // remaining email headers: remove them
  removeKind(p, lines, 'h');

  // trailing quotes when there's at least one line of text
  if (p.includes('t')) {
    const k = suffixStart(p, 'eq');
    if (k < p.length) truncate(p, lines, k);
  }

  return restoreBlocks(rubyStrip(lines.join('\n')), hoisted.blocks);
}

function restoreBlocks(trimmed: string, blocks: Map<string, string>): string {
  let out = trimmed;
  for (const [token, block] of blocks) out = out.split(token).join(block);
  return out;
}
