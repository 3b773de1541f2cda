import { Readable } from 'node:stream';
import libmime from 'libmime';
import { MailParser, type AddressObject, type EmailAddress } from 'mailparser';

/**
 * Received mail → structured data, with mailparser's streaming `MailParser` (attachments are
 * streamed out one by one, never all held by the parser). The contract that matters: this function
 * never throws for bad input. Malformed MIME yields whatever could be parsed plus `warnings`, and the
 * caller keeps the raw bytes regardless, so no message is ever lost to a parser bug.
 */

export interface ParsedAddress { address: string; name: string }

export interface ParsedAttachment {
  filename: string | null;
  content_type: string;
  disposition: string | null;
  content_id: string | null;
  content: Buffer;
}

export interface ParsedMessage {
  from: ParsedAddress | null;
  to: ParsedAddress[];
  cc: ParsedAddress[];
  reply_to: ParsedAddress[];
  subject: string | null;
  date: Date | null;
  message_id: string | null;
  in_reply_to: string | null;
  references: string[];
  text: string | null;
  html: string | null;
  headers: { name: string; value: string }[];
  attachments: ParsedAttachment[];
  warnings: string[];
}

export interface ParseLimits {
  /** Give up on parsing (keep what was parsed) after this long. */
  timeoutMs: number;
  /** HTML bodies larger than this are not converted to text (mailparser PR #203: hostile HTML). */
  maxHtmlLengthToParse: number;
  /** At most this many attachments are extracted; the rest are counted in a warning. */
  maxAttachments: number;
  /** Stored text and html are cut at this many characters each. */
  maxBodyChars: number;
}

export const DEFAULT_PARSE_LIMITS: ParseLimits = {
  timeoutMs: 30_000,
  maxHtmlLengthToParse: 2 * 1024 * 1024,
  maxAttachments: 1000,
  maxBodyChars: 5 * 1024 * 1024,
};

// PostgreSQL text and jsonb cannot hold U+0000; a message carrying one must still be stored.
// eslint-disable-next-line no-control-regex
const NUL = /\u0000/g;

function clean(v: unknown, warnings: Set<string>): string | null {
  if (v === undefined || v === null) return null;
  let s = typeof v === 'string' ? v : String(v);
  if (s.includes('\u0000')) {
    warnings.add('nul_bytes_removed');
    s = s.replace(NUL, '');
  }
  // A lone surrogate (libmime's ISO-2022-JP decoder passes a UTF-8-encoded one through) makes the
  // jsonb insert fail ("invalid input syntax for type json"): replace it with U+FFFD.
  if (!s.isWellFormed()) {
    warnings.add('lone_surrogates_replaced');
    s = s.toWellFormed();
  }
  return s;
}

function flattenAddresses(obj: AddressObject | AddressObject[] | undefined, warnings: Set<string>): ParsedAddress[] {
  if (!obj) return [];
  const out: ParsedAddress[] = [];
  const visit = (list: EmailAddress[]) => {
    for (const a of list) {
      if (a.group) visit(a.group);
      else if (a.address || a.name) out.push({ address: clean(a.address ?? '', warnings) ?? '', name: clean(a.name ?? '', warnings) ?? '' });
    }
  };
  for (const o of Array.isArray(obj) ? obj : [obj]) visit(o.value ?? []);
  return out;
}

/** Header lines as the sender wrote them, unfolded and with RFC 2047 words decoded, order kept. */
function headerList(lines: { key: string; line: string }[], warnings: Set<string>): { name: string; value: string }[] {
  return lines.map(({ line }) => {
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon).trim() : line.trim();
    let value = colon > 0 ? line.slice(colon + 1) : '';
    value = value.replace(/\r?\n[ \t]*/g, ' ').trim();
    try {
      value = libmime.decodeWords(value);
    } catch {
      warnings.add('header_decode_failed');
    }
    return { name: clean(name, warnings) ?? '', value: clean(value, warnings) ?? '' };
  });
}

// An id is a key of thread_refs, whose btree index takes at most 2704 bytes a row; no real id comes
// near this (a header line has at most 998 octets, RFC 5322 §2.1.1).
const MAX_ID_BYTES = 998;
// References kept for threading: the first (the thread's root) and the latest. Every one becomes a
// bind parameter and a thread_refs row, and a 250 KB header can list 40,000 of them.
const MAX_REFERENCES = 100;

function idList(v: string | string[] | undefined, warnings: Set<string>): string[] {
  if (!v) return [];
  const all = (Array.isArray(v) ? v : [v]).join(' ');
  // Some mailers omit the angle brackets; keep bare tokens that look like ids.
  const ids = all.match(/<[^<>\s]+>/g) ?? all.split(/[\s,]+/).filter((t) => t.includes('@')).map((t) => `<${t}>`);
  const kept = ids.filter((id) => Buffer.byteLength(id) <= MAX_ID_BYTES);
  if (kept.length < ids.length) warnings.add('oversized_ids_dropped');
  return kept;
}

const firstId = (v: string | undefined, warnings: Set<string>): string | null => idList(v, warnings)[0] ?? null;

const truncate = (s: string | null, max: number, warnings: Set<string>, what: string): string | null => {
  if (s !== null && s.length > max) {
    warnings.add(`${what}_truncated`);
    return s.slice(0, max);
  }
  return s;
};

const TRANSFER_ENCODINGS = new Set(['7bit', '8bit', 'binary', 'base64', 'quoted-printable']);

/** The boundaries that have a closing delimiter line ("--b--", trailing white space allowed) in `raw`. */
function closedBoundaries(raw: Buffer): Set<string> {
  const closed = new Set<string>();
  for (let at = raw[0] === 0x2d && raw[1] === 0x2d ? 0 : raw.indexOf('\n--'); at >= 0; at = raw.indexOf('\n--', at + 1)) {
    const start = raw[at] === 0x2d ? at + 2 : at + 3;
    let end = raw.indexOf(0x0a, start);
    if (end < 0) end = raw.length;
    // A boundary has at most 70 characters (RFC 2046 §5.1.1): longer lines are content.
    if (end - start > 1000) continue;
    const line = raw.toString('latin1', start, end).replace(/[ \t\r]+$/, '');
    if (line.endsWith('--')) closed.add(line.slice(0, -2));
  }
  return closed;
}

export async function parseMessage(raw: Buffer, limits: ParseLimits = DEFAULT_PARSE_LIMITS): Promise<ParsedMessage> {
  const warnings = new Set<string>();
  const result: ParsedMessage = {
    from: null, to: [], cc: [], reply_to: [], subject: null, date: null, message_id: null, in_reply_to: null,
    references: [], text: null, html: null, headers: [], attachments: [], warnings: [],
  };
  const parser = new MailParser({
    skipTextToHtml: true,
    skipTextLinks: true,
    skipImageLinks: true,
    maxHtmlLengthToParse: limits.maxHtmlLengthToParse,
    checksumAlgo: false,
  });
  let headers: Map<string, unknown> | null = null;
  let droppedAttachments = 0;

  // mailparser emits nothing per MIME node for text parts, so its createNode (internal, but stable
  // since mailparser 2) is wrapped to see every node. Should it ever go, only these checks go.
  const boundaries = new Set<string>();
  const createNode = (parser as any).createNode;
  if (typeof createNode === 'function') {
    (parser as any).createNode = function (this: unknown, node: any) {
      const created = createNode.call(this, node);
      try {
        // An unknown Content-Transfer-Encoding is passed through undecoded: say so.
        if (node?.encoding && !TRANSFER_ENCODINGS.has(node.encoding)) warnings.add('unknown_transfer_encoding');
        if (node?.multipart && Buffer.isBuffer(node._boundary) && boundaries.size < 100) boundaries.add(node._boundary.toString('latin1'));
        // mailparser never reads the decoder of an inline message/rfc822 node, and when the input
        // ends inside that node's header block it waits for that decoder's 'end' until our timeout
        // (30 s of a worker for a 100-byte message). Letting it flow lets 'end' come.
        if (node?.messageNode && created?.decoder) created.decoder.resume();
      } catch {
        // Diagnostics only: never let them break the parse.
      }
      return created;
    };
  }

  const done = new Promise<void>((resolve) => {
    let finished = false;
    const finish = () => { if (!finished) { finished = true; resolve(); } };
    const timer = setTimeout(() => {
      warnings.add('parse_timeout');
      parser.destroy();
      finish();
    }, limits.timeoutMs);
    // A throw inside a stream listener would take the process down; every listener is guarded.
    const guard = <A extends unknown[]>(fn: (...a: A) => void) => (...a: A) => {
      try {
        fn(...a);
      } catch (err) {
        warnings.add(`parse_error: ${String((err as Error)?.message ?? err).slice(0, 200)}`);
      }
    };
    parser.on('headers', guard((h: Map<string, unknown>) => { headers ??= h; }));
    parser.on('headerLines', guard((lines: { key: string; line: string }[]) => {
      if (!result.headers.length) result.headers = headerList(lines, warnings);
    }));
    parser.on('data', guard((data: any) => {
      if (data.type === 'text') {
        result.text = clean(typeof data.text === 'string' ? data.text : null, warnings);
        result.html = clean(typeof data.html === 'string' ? data.html : null, warnings);
        return;
      }
      if (data.type !== 'attachment') return;
      const chunks: Buffer[] = [];
      data.content.on('data', (c: Buffer) => { if (result.attachments.length < limits.maxAttachments) chunks.push(c); });
      data.content.on('end', guard(() => {
        if (result.attachments.length < limits.maxAttachments) {
          result.attachments.push({
            filename: clean(data.filename ?? null, warnings),
            content_type: clean(data.contentType ?? 'application/octet-stream', warnings) ?? 'application/octet-stream',
            disposition: clean(data.contentDisposition ?? null, warnings),
            content_id: clean(data.contentId ?? null, warnings),
            content: Buffer.concat(chunks),
          });
        } else {
          droppedAttachments++;
        }
        data.release();
      }));
    }));
    parser.on('error', (err: Error) => {
      warnings.add(`parse_error: ${String(err?.message ?? err).slice(0, 200)}`);
      clearTimeout(timer);
      finish();
    });
    parser.on('end', () => { clearTimeout(timer); finish(); });
  });
  Readable.from([raw]).pipe(parser);
  await done;

  if (boundaries.size && !warnings.has('parse_timeout')) {
    const closed = closedBoundaries(raw);
    if ([...boundaries].some((bd) => !closed.has(bd))) warnings.add('missing_final_boundary');
  }
  if (droppedAttachments) warnings.add(`attachments_dropped: ${droppedAttachments} over the limit of ${limits.maxAttachments}`);
  if (!result.headers.length) {
    warnings.add('no_headers');
  }
  const h = (headers ?? new Map()) as Map<string, any>;
  const from = flattenAddresses(h.get('from'), warnings);
  result.from = from[0] ?? null;
  if (from.length > 1) warnings.add('multiple_from_addresses');
  if (!result.from) warnings.add('missing_from');
  result.to = flattenAddresses(h.get('to'), warnings);
  result.cc = flattenAddresses(h.get('cc'), warnings);
  result.reply_to = flattenAddresses(h.get('reply-to'), warnings);
  result.subject = clean(typeof h.get('subject') === 'string' ? h.get('subject') : null, warnings);
  // Judged from the header itself: mailparser turns an unparsable Date into "now". Years outside
  // 1–9999 are junk, and before 4713 BC they would not even fit a timestamptz (the insert would fail).
  const dateHeader = result.headers.find((x) => x.name.toLowerCase() === 'date');
  const date = dateHeader ? new Date(dateHeader.value) : null;
  if (date && !Number.isNaN(date.getTime()) && date.getUTCFullYear() >= 1 && date.getUTCFullYear() <= 9999) result.date = date;
  else warnings.add(dateHeader ? 'invalid_date' : 'missing_date');
  result.message_id = clean(firstId(h.get('message-id'), warnings), warnings);
  if (!result.message_id) warnings.add('missing_message_id');
  result.in_reply_to = clean(firstId(h.get('in-reply-to'), warnings), warnings);
  let references = idList(h.get('references'), warnings);
  if (references.length > MAX_REFERENCES) {
    warnings.add(`references_truncated: ${references.length} to ${MAX_REFERENCES}`);
    references = [references[0], ...references.slice(references.length - MAX_REFERENCES + 1)];
  }
  result.references = references.map((r) => clean(r, warnings) ?? r);
  result.text = truncate(result.text, limits.maxBodyChars, warnings, 'text');
  result.html = truncate(result.html, limits.maxBodyChars, warnings, 'html');
  result.warnings = [...warnings];
  return result;
}
