import libmime from 'libmime';

/**
 * A small, forgiving MIME walker for bounce reports. Bounces are small but often old or broken
 * (missing closing boundaries, bare CR line ends, undeclared 8-bit charsets), and the classifier
 * needs things a general parser hides: the raw message/delivery-status fields, whether a part sits
 * inside the returned original message, and the preamble text some MTAs put before the first
 * boundary. Structure is worked out on a latin1 string (one char per byte, so nothing is lost) and
 * text is decoded to Unicode per leaf part, with its own charset.
 */

export interface HeaderField { name: string; value: string }

export interface MimePart {
  headers: HeaderField[];
  /** lower-cased "type/subtype"; text/plain when absent or unparsable */
  contentType: string;
  params: Record<string, string>;
  /** decoded text of a leaf part (transfer encoding and charset undone); '' for containers */
  text: string;
  children: MimePart[];
  /** true when this part is, or sits inside, an embedded message (message/rfc822 and the like) */
  inMessage: boolean;
}

// Limits that keep a hostile report from costing much: bounces nest two or three levels deep, and
// what a report says fits in far less than a megabyte of text per part.
const MAX_DEPTH = 8;
const MAX_PARTS = 200;
const MAX_TEXT_BYTES = 1024 * 1024;

/** Bytes → one string with "\n" line ends, whatever the input used (CRLF, LF or CR only). */
export function normalizeLineEnds(raw: Buffer): string {
  return raw.toString('latin1').replace(/\r\n?/g, '\n');
}

/** Splits a latin1 message into its header block and body at the first empty line. */
function splitHeadBody(src: string): { head: string; body: string } {
  // A message that starts with a blank line has no headers at all.
  if (src.startsWith('\n')) return { head: '', body: src.slice(1) };
  const at = src.indexOf('\n\n');
  if (at < 0) {
    // No empty line: a header block alone if it starts like one, otherwise a body without headers.
    return /^[!-9;-~]+:/.test(src) ? { head: src, body: '' } : { head: '', body: src };
  }
  return { head: src.slice(0, at), body: src.slice(at + 2) };
}

/** Unfolded header fields, in order. Values stay raw (latin1, RFC 2047 words not yet decoded). */
export function parseHeaderBlock(head: string): HeaderField[] {
  const out: HeaderField[] = [];
  for (const line of head.split('\n')) {
    if (/^[ \t]/.test(line) && out.length) {
      out[out.length - 1].value += ' ' + line.trim();
      continue;
    }
    // An mbox "From " separator line is not a header field.
    const m = /^([!-9;-~]+)[ \t]*:(.*)$/.exec(line);
    if (m) out.push({ name: m[1].toLowerCase(), value: m[2].trim() });
  }
  return out;
}

/** Decodes RFC 2047 words and raw UTF-8 in a header value; never throws. */
export function decodeHeaderValue(value: string): string {
  let v = value;
  // Raw 8-bit header bytes are usually UTF-8; decodeBytes keeps latin1 when they are not.
  if (/[\x80-\xff\x1b]/.test(v)) v = decodeBytes(Buffer.from(v, 'latin1'), undefined);
  try {
    return libmime.decodeWords(v);
  } catch {
    return v;
  }
}

export function headerValue(headers: HeaderField[], name: string): string | null {
  const f = headers.find((h) => h.name === name);
  return f ? f.value : null;
}

/** "type/subtype; a=b; c="d"" → lower-cased type and parameters (parameter names lower-cased). */
export function parseContentType(value: string | null): { type: string; params: Record<string, string> } {
  if (!value) return { type: 'text/plain', params: {} };
  let parsed: { value: string; params: Record<string, string> };
  try {
    parsed = libmime.parseHeaderValue(value) as { value: string; params: Record<string, string> };
  } catch {
    return { type: 'text/plain', params: {} };
  }
  const type = (parsed.value || '').toLowerCase().trim();
  const params: Record<string, string> = {};
  for (const [k, v] of Object.entries(parsed.params ?? {})) params[k.toLowerCase()] = String(v);
  return { type: /^[a-z0-9.+-]+\/[a-z0-9.+-]+$/.test(type) ? type : 'text/plain', params };
}

function decodeQuotedPrintable(s: string): Buffer {
  const stripped = s.replace(/=[ \t]*\n/g, '');
  const bytes: number[] = [];
  for (let i = 0; i < stripped.length; i++) {
    const c = stripped.charCodeAt(i);
    if (c === 0x3d && /^[0-9A-Fa-f]{2}$/.test(stripped.slice(i + 1, i + 3))) {
      bytes.push(parseInt(stripped.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(c & 0xff);
    }
  }
  return Buffer.from(bytes);
}

/** Bytes of a part after undoing its Content-Transfer-Encoding. */
function transferDecode(body: string, encoding: string | null): Buffer {
  const enc = (encoding ?? '').toLowerCase().trim();
  if (enc === 'base64') return Buffer.from(body.replace(/[^A-Za-z0-9+/=]/g, ''), 'base64');
  if (enc === 'quoted-printable') return decodeQuotedPrintable(body);
  return Buffer.from(body, 'latin1');
}

/** Bytes → text in `charset`; undeclared or unknown charsets try UTF-8, then latin1. */
export function decodeBytes(bytes: Buffer, charset: string | undefined): string {
  let label = (charset ?? '').trim().toLowerCase();
  // Japanese MTAs send ISO-2022-JP without declaring it; its escape sequences (ESC $ B, ESC ( B) give it away.
  if ((!label || label === 'us-ascii' || label === 'ascii') && /\x1b[$(][@BJ]/.test(bytes.toString('latin1'))) label = 'iso-2022-jp';
  // A 7-bit charset cannot carry 8-bit bytes: such a part was re-encoded (to UTF-8, usually) on its way.
  if (/^(?:iso-2022-|us-ascii$|ascii$)/.test(label) && bytes.some((b) => b > 0x7f)) label = '';
  if (label && label !== 'us-ascii' && label !== 'ascii') {
    try {
      return new TextDecoder(label).decode(bytes);
    } catch {
      // unknown label: fall through to the guesses below
    }
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return bytes.toString('latin1');
  }
}

/** The delimiter of a multipart body whose boundary parameter is missing: a "--x" line seen twice. */
function guessBoundary(body: string): string | undefined {
  const seen = new Set<string>();
  for (const m of body.matchAll(/^--([^\s-][^\s]{5,69})[ \t]*$/gm)) {
    const b = m[1].replace(/--$/, '');
    if (seen.has(b)) return b;
    seen.add(b);
  }
  return undefined;
}

function boundaryLines(body: string, boundary: string): { starts: number[]; ends: number[]; closeAt: number } {
  const starts: number[] = [];
  const ends: number[] = [];
  let closeAt = -1;
  const delim = '--' + boundary;
  let pos = 0;
  while (pos <= body.length) {
    const nl = body.indexOf('\n', pos);
    const lineEnd = nl < 0 ? body.length : nl;
    if (body.startsWith(delim, pos)) {
      const rest = body.slice(pos + delim.length, lineEnd);
      if (/^--/.test(rest)) {
        closeAt = pos;
        break;
      }
      // Trailing white space after a delimiter is allowed (RFC 2046 §5.1.1).
      if (/^[ \t]*$/.test(rest)) {
        starts.push(pos);
        ends.push(nl < 0 ? body.length : nl + 1);
      }
    }
    if (nl < 0) break;
    pos = nl + 1;
  }
  return { starts, ends, closeAt };
}

interface WalkState { parts: number }

function parseEntity(src: string, depth: number, inMessage: boolean, state: WalkState): MimePart {
  state.parts++;
  const { head, body } = splitHeadBody(src);
  const headers = parseHeaderBlock(head);
  const { type, params } = parseContentType(headerValue(headers, 'content-type'));
  const part: MimePart = { headers, contentType: type, params, text: '', children: [], inMessage };
  const cte = headerValue(headers, 'content-transfer-encoding');

  if (type.startsWith('multipart/') && depth < MAX_DEPTH) {
    // A boundary parameter lost to a cut header line can still be recovered from the body.
    const boundary = params.boundary || guessBoundary(body);
    const { starts, ends, closeAt } = boundary ? boundaryLines(body, boundary) : { starts: [], ends: [], closeAt: -1 };
    if (starts.length) {
      // Text before the first boundary is normally "This is a MIME message"; a few MTAs put the
      // whole explanation there, so it is kept as a text part of its own.
      const preamble = body.slice(0, starts[0]).trim();
      if (preamble) part.children.push({ headers: [], contentType: 'text/x-preamble', params: {}, text: preamble, children: [], inMessage });
      for (let i = 0; i < starts.length && state.parts < MAX_PARTS; i++) {
        const from = ends[i];
        let to = i + 1 < starts.length ? starts[i + 1] : closeAt >= 0 ? closeAt : body.length;
        if (to > from && body[to - 1] === '\n') to--; // the line break before a delimiter belongs to it
        part.children.push(parseEntity(body.slice(from, Math.max(from, to)), depth + 1, inMessage, state));
      }
      return part;
    }
    // A multipart that cannot be split: read the body as text, which is what it really is.
    part.contentType = 'text/plain';
  }

  if ((type === 'message/rfc822' || type === 'message/global' || type === 'message/partial') && depth < MAX_DEPTH) {
    const inner = transferDecode(body, cte).toString('latin1');
    part.children.push(parseEntity(inner, depth + 1, true, state));
    return part;
  }

  // Only text is read; attachments (images, archives) of a returned message are never decoded.
  if (!isTextual(part.contentType)) return part;
  const bytes = transferDecode(body.length > MAX_TEXT_BYTES ? body.slice(0, MAX_TEXT_BYTES) : body, cte);
  part.text = decodeBytes(bytes, params.charset);
  return part;
}

function isTextual(type: string): boolean {
  return type.startsWith('text/') || /^message\/(?:(?:global-)?delivery-status|feedback-report|disposition-notification|global-headers)$/.test(type);
}

/** Parses a whole message. Never throws: the worst case is one text part holding everything. */
export function parseMime(raw: Buffer): MimePart {
  const src = normalizeLineEnds(raw).replace(/^From [^\n]*\n/, ''); // mbox separator line
  try {
    return parseEntity(src, 0, false, { parts: 0 });
  } catch {
    return { headers: [], contentType: 'text/plain', params: {}, text: decodeBytes(Buffer.from(src, 'latin1'), undefined), children: [], inMessage: false };
  }
}

/** Every part of the tree, depth first, the root included. */
export function allParts(root: MimePart): MimePart[] {
  const out: MimePart[] = [];
  const walk = (p: MimePart) => {
    out.push(p);
    for (const c of p.children) walk(c);
  };
  walk(root);
  return out;
}

/**
 * An embedded message re-rooted as a top-level one: its parts are no longer "inside a returned
 * message", except those inside messages it embeds itself. Used for reports forwarded as an
 * attachment by a filter that wraps them.
 */
export function asTopLevel(message: MimePart): MimePart {
  const lift = (p: MimePart, inMessage: boolean): MimePart => {
    const nested = p.contentType === 'message/rfc822' || p.contentType === 'message/global';
    return { ...p, inMessage, children: p.children.map((c) => lift(c, inMessage || nested)) };
  };
  return lift(message, false);
}
