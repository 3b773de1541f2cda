import { headerValue, type MimePart } from './mime.ts';

/**
 * Splitting a non-standard bounce text into one block per failed recipient. MTAs that do not
 * send RFC 3464 reports still follow one shape: a line that names the recipient (alone, in angle
 * brackets, followed by a colon, or behind a "Recipient:" label), then the lines that explain the
 * failure, up to the next recipient. Addresses mentioned inside an explanation ("550 <x>... User
 * unknown") are not recipient lines.
 */

export interface RecipientBlock { address: string; text: string }

const MAX_RECIPIENTS = 500;

const ADDR_SRC = String.raw`[A-Za-z0-9.!#$%&'*+/=?^_\`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+`;

// A line naming a recipient, captured in group 1. Ordered loosely from the most common shapes.
const RECIPIENT_LINE: RegExp[] = [
  // "<user@example.jp>:" (qmail), "user@example.jp" (Exim, indented), "<user@example.jp>" (Sendmail)
  new RegExp(String.raw`^\s*(?:["'][^"']*["']\s*)?<?(?:mailto:)?(${ADDR_SRC})>?\s*:?\s*$`),
  // "\"user@example.jp\":" (GMX)
  new RegExp(String.raw`^\s*"(${ADDR_SRC})"\s*:?\s*$`),
  // "550 5.1.1 <user@example.jp>... User unknown": Sendmail's own verdict line in a transcript
  // (not a "<<<" line, which quotes the remote server).
  new RegExp(String.raw`^\s*[45]\d\d(?:[ -][45]\.\d{1,3}\.\d{1,3})? <(${ADDR_SRC})>\.\.\.\s`),
  // "<user@example.jp>: host mx said: ..." (Postfix), "<user@example.jp>... User unknown"
  new RegExp(String.raw`^\s*<(${ADDR_SRC})>\s*(?::|\.\.\.|,)\s*\S`),
  new RegExp(String.raw`^\s*(${ADDR_SRC})\s*(?::\s+\S|\.\.\.)`),
  // "user@example.jp (reason)" / "user@example.jp <user@example.jp>" (display lists)
  new RegExp(String.raw`^\s*(${ADDR_SRC})\s+(?:\(|<|on\b|\[|-\s)`),
  // Labelled: "Failed recipient: x", "Original-Recipient: rfc822;x", "Unknown user: x", "Delivery failed 20 attempts: x".
  // Header-like labels of a quoted original ("To:", "From:", "Reply-To:") are not recipient lines.
  new RegExp(String.raw`^\s*(?!(?:to|from|cc|bcc|reply-to|sender|return-path|sent by|by|date|subject|mail from|envelope-from|message-id|content-id|errors-to|in-reply-to|references|delivered-to|disposition-notification-to|return-receipt-to|resent-[a-z-]+|list-[a-z-]+|x-(?![a-z-]*recipients?\s*:)[a-z-]+)\s*:)[A-Za-z][^:@<>]{1,60}:\s*(?:rfc822;\s*)?(?:"[^"]*"\s*)?<?(${ADDR_SRC})>?\.?\s*$`, 'i'),
  // "There was an error delivering your mail to <x>.", "Your message to <x> was rejected"
  new RegExp(String.raw`\b(?:deliver(?:ing|y)?|sending|send|message|mail|e-?mail) (?:\S+ ){0,3}to:? <(${ADDR_SRC})>(?:[.:,]|\s+(?:was|has|could|failed|is)\b|\s*$)`, 'i'),
  // "[Status: Error, Address: <x>, ResponseCode 421, ...]" (Zoho) and other "Address: <x>," tables
  new RegExp(String.raw`\b(?:recipient|address)(?: address)?\s*[:=]\s*<(${ADDR_SRC})>\s*[,;\]]`, 'i'),
  // "user@example.jp Invalid Address, ERROR_CODE :550, ..." (Zoho)
  new RegExp(String.raw`^\s*(${ADDR_SRC})\s+[^@]*\bERROR_CODE\s*:`),
  // "  - user@example.jp", "* user@example.jp" bullet lists
  new RegExp(String.raw`^\s*[-*•]\s*<?(${ADDR_SRC})>?\s*(?:[:(].*)?$`),
];

function recipientOnLine(line: string): string | null {
  for (const re of RECIPIENT_LINE) {
    const m = re.exec(line);
    if (m) return m[1].replace(/\.$/, '').toLowerCase();
  }
  return null;
}

/**
 * Blocks per recipient, in order of first mention. `exclude` are addresses that are not
 * recipients (the report's own sender and the original sender it is addressed to). When the text
 * before the first recipient line holds the explanation (some MTAs list addresses last), every
 * block also gets that lead text.
 */
export function recipientBlocks(text: string, exclude: ReadonlySet<string>): RecipientBlock[] {
  const lines = text.split('\n');
  const hits: { at: number; address: string }[] = [];
  const distinct = new Set<string>();
  for (let i = 0; i < lines.length; i++) {
    const a = recipientOnLine(lines[i]);
    if (!a || exclude.has(a)) continue;
    // A report lists a message's recipients; past a few hundred it is a mass mailing or an attack.
    if (!distinct.has(a) && distinct.size >= MAX_RECIPIENTS) break;
    distinct.add(a);
    hits.push({ at: i, address: a });
  }
  if (!hits.length) return [];
  // A Sendmail transcript tells the SMTP exchange ("While talking to host:", ">>> RCPT To:<x>",
  // "<<< 550 ...") just before its verdict line for the recipient: those lines belong to it.
  const starts = hits.map((h, i) => {
    let at = h.at;
    const floor = i > 0 ? hits[i - 1].at + 1 : 0;
    while (at > floor && /^\s*(?:>>>|<<<|\.{3} while talking to|while talking to)/i.test(lines[at - 1])) at--;
    return at;
  });
  const byAddress = new Map<string, string[]>();
  for (let h = 0; h < hits.length; h++) {
    const end = h + 1 < hits.length ? starts[h + 1] : lines.length;
    const chunk = lines.slice(starts[h], Math.max(end, hits[h].at + 1)).join('\n');
    const list = byAddress.get(hits[h].address) ?? [];
    list.push(chunk);
    byAddress.set(hits[h].address, list);
  }
  const lead = lines.slice(0, starts[0]).join('\n');
  return [...byAddress.entries()].map(([address, chunks]) => {
    const own = chunks.join('\n');
    return { address, text: explainsItself(own) ? own : `${own}\n${lead}` };
  });
}

// A block that carries a status or reply code explains itself; otherwise the lead text might.
function explainsItself(block: string): boolean {
  return /(?<![\d.])[245]\.\d{1,3}\.\d{1,3}(?![\d])|(?:^|\s)[45]\d\d[\s-]/.test(block);
}

/** Every address in `text`, lower-cased, in order, without duplicates. */
export function addressesIn(text: string): string[] {
  const seen = new Set<string>();
  for (const m of text.matchAll(new RegExp(ADDR_SRC, 'g'))) seen.add(m[0].replace(/\.$/, '').toLowerCase());
  return [...seen];
}

// Role mailboxes a report asks the reader to contact ("contact: postmaster@example.net").
const CONTACT_ROLE = /^(?:postmaster|mailer-daemon|abuse|hostmaster|webmaster|help|support|noreply|no-reply)@/;

/**
 * The recipient blocks of a report's text. The report's own From and To (the reporting daemon and
 * the original sender) are not recipients, unless nothing else is named; nor are role mailboxes
 * named next to real recipients, which are contacts.
 */
export function reportRecipientBlocks(root: MimePart, text: string): RecipientBlock[] {
  const exclude = new Set([...addressesIn(headerValue(root.headers, 'from') ?? ''), ...addressesIn(headerValue(root.headers, 'to') ?? '')]);
  const blocks = recipientBlocks(text, exclude);
  const found = blocks.length ? blocks : recipientBlocks(text, new Set());
  const people = found.filter((b) => !CONTACT_ROLE.test(b.address));
  return people.length ? people : found;
}
