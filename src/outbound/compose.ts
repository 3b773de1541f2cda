import MailComposer from 'nodemailer/lib/mail-composer';
import { MailroomError } from '../errors.ts';
import { ulid } from '../ids.ts';
import { domainOf, hasLineBreak, parseMailbox, type Mailbox } from './addresses.ts';

/**
 * A send request → RFC 5322 bytes, with nodemailer's MailComposer (never hand-built MIME). Every
 * check that can refuse a request happens here, before anything is stored or queued: header
 * injection, addresses, custom header names, attachment encoding and the size of the result.
 */
export interface SendContent {
  to?: string[];
  cc?: string[];
  bcc?: string[];
  subject?: string;
  text?: string;
  html?: string;
  attachments?: { filename: string; content_type?: string; content: string }[];
  headers?: Record<string, string>;
}

export interface Threading {
  inReplyTo: string | null;
  references: string[];
}

export interface Composed {
  raw: Buffer;
  messageId: string;
  from: Mailbox;
  recipients: (Mailbox & { kind: 'to' | 'cc' | 'bcc' })[];
  subject: string;
}

// A custom header must be an X- header with a token name (RFC 5322 §3.6.8 ftext) and no line break:
// everything else (From, Bcc, Content-Type…) is Mailroom's to write.
const X_HEADER = /^X-[!-9;-~]{1,76}$/i;
// Headers that look custom but would change how receivers treat the message or its routing.
const RESERVED_X = new Set(['x-mailroom-trace-id']);

const BASE64 = /^[A-Za-z0-9+/\r\n]*={0,2}[\r\n]*$/;

export async function compose(
  content: SendContent,
  from: Mailbox,
  threading: Threading,
  opts: { maxSize: number; traceId: string; date?: Date; /** Mailroom's own headers (List-Unsubscribe…), never the caller's. */ extraHeaders?: (recipients: Composed['recipients']) => Promise<Record<string, string>> },
): Promise<Composed> {
  const recipients: Composed['recipients'] = [];
  const seen = new Set<string>();
  for (const kind of ['to', 'cc', 'bcc'] as const) {
    for (const [i, input] of (content[kind] ?? []).entries()) {
      const mb = parseMailbox(input, `${kind}[${i}]`);
      // One copy per address, whatever list it appears in (the first list wins).
      if (seen.has(mb.address.toLowerCase())) continue;
      seen.add(mb.address.toLowerCase());
      recipients.push({ ...mb, kind });
    }
  }
  if (!recipients.length) throw new MailroomError('invalid_address', 'at least one recipient (to, cc or bcc) is required');

  const subject = content.subject ?? '';
  if (hasLineBreak(subject)) throw new MailroomError('header_injection', 'subject: line breaks are not allowed');
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(content.headers ?? {})) {
    if (hasLineBreak(name) || hasLineBreak(value)) throw new MailroomError('header_injection', `headers.${name.slice(0, 80)}: line breaks are not allowed`);
    if (!X_HEADER.test(name) || RESERVED_X.has(name.toLowerCase())) {
      throw new MailroomError('invalid_header', `headers.${name.slice(0, 80)}: only custom X- headers may be set`);
    }
    if (value.length > 900) throw new MailroomError('invalid_header', `headers.${name}: value longer than 900 characters`);
    headers[name] = value;
  }

  const attachments = (content.attachments ?? []).map((a, i) => {
    if (hasLineBreak(a.filename) || (a.content_type && hasLineBreak(a.content_type))) {
      throw new MailroomError('header_injection', `attachments[${i}]: line breaks are not allowed in filename or content_type`);
    }
    if (a.content_type && !/^[\w.+-]+\/[\w.+-]+$/.test(a.content_type)) {
      throw new MailroomError('invalid_attachment', `attachments[${i}].content_type: "${a.content_type.slice(0, 80)}" is not a MIME type`);
    }
    if (!BASE64.test(a.content)) throw new MailroomError('invalid_attachment', `attachments[${i}].content: not base64`);
    return { filename: a.filename, contentType: a.content_type, content: Buffer.from(a.content, 'base64') };
  });
  // Checked before composing: base64 makes the message a third larger, and composing a hostile
  // payload only to refuse it afterwards would be wasted memory.
  const approx = attachments.reduce((n, a) => n + a.content.length * 1.37, 0) + Buffer.byteLength(content.text ?? '') + Buffer.byteLength(content.html ?? '');
  if (approx > opts.maxSize) throw new MailroomError('message_too_large', `the message would be about ${Math.round(approx)} bytes; the limit is ${opts.maxSize}`);

  const messageId = `<${ulid().toLowerCase()}@${domainOf(from.address)}>`;
  const extra = opts.extraHeaders ? await opts.extraHeaders(recipients) : {};
  const mail = new MailComposer({
    from,
    to: recipients.filter((r) => r.kind === 'to'),
    cc: recipients.filter((r) => r.kind === 'cc'),
    // Bcc recipients are in the envelope only: MailComposer leaves the Bcc header out.
    subject,
    text: content.text,
    html: content.html,
    attachments,
    messageId,
    date: opts.date ?? new Date(),
    inReplyTo: threading.inReplyTo ?? undefined,
    references: threading.references.length ? threading.references : undefined,
    headers: { ...headers, ...extra, 'X-Mailroom-Trace-Id': opts.traceId },
  });
  return new Promise<Composed>((resolve, reject) => {
    mail.compile().build((err, raw) => {
      if (err) return reject(new MailroomError('invalid_request', `the message could not be composed: ${err.message}`));
      if (raw.length > opts.maxSize) return reject(new MailroomError('message_too_large', `the message is ${raw.length} bytes; the limit is ${opts.maxSize}`));
      resolve({ raw, messageId, from, recipients, subject });
    });
  });
}
