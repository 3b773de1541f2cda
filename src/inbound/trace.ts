/**
 * The trace header Mailroom prepends to every received message (RFC 5321 §4.4). It is the only
 * change made to the sender's bytes: the stored raw is this header followed by the DATA exactly as
 * received, and `trace_size` records where the sender's bytes begin.
 */
export interface TraceInfo {
  helo: string | null;
  remoteAddress: string | null;
  clientHostname: string | null;
  hostname: string;
  tls: boolean;
  /** False when the client greeted with HELO: the session is plain SMTP, not ESMTP. */
  esmtp: boolean;
  receiptId: string;
  recipients: string[];
  date: Date;
}

// Anything a client controls is reduced to printable ASCII without parentheses or semicolons,
// so it can neither fold the header nor forge a clause of it.
const safe = (s: string | null | undefined, max = 100) => (s ?? 'unknown').replace(/[^\x21-\x7e]|[();]/g, '').slice(0, max) || 'unknown';

export function receivedHeader(t: TraceInfo): Buffer {
  const from = `from ${safe(t.helo)} (${safe(t.clientHostname)} [${safe(t.remoteAddress, 64)}])`;
  // RFC 3848 "with" keywords. STARTTLS is itself an ESMTP extension, so TLS is always ESMTPS.
  const protocol = t.tls ? 'ESMTPS' : t.esmtp ? 'ESMTP' : 'SMTP';
  const by = `by ${safe(t.hostname)} (Mailroom) with ${protocol} id ${t.receiptId}`;
  // "for" only with a single recipient, as Postfix does: listing them all would disclose Bcc recipients.
  const forClause = t.recipients.length === 1 ? `\r\n\tfor <${safe(t.recipients[0], 320)}>` : '';
  return Buffer.from(`Received: ${from}\r\n\t${by}${forClause};\r\n\t${t.date.toUTCString().replace('GMT', '+0000')}\r\n`, 'latin1');
}

/** The trace header(s) Mailroom prepended, read back from their bytes as name/value pairs. */
export function traceHeaderFields(trace: Buffer): { name: string; value: string }[] {
  return trace
    .toString('latin1')
    .replace(/\r\n(?=[ \t])/g, '')
    .split('\r\n')
    .filter(Boolean)
    .map((line) => {
      const colon = line.indexOf(':');
      return { name: line.slice(0, colon), value: line.slice(colon + 1).replace(/\s+/g, ' ').trim() };
    });
}
