/**
 * Finding SMTP facts in free text: enhanced status codes (RFC 3463, "5.1.1"), basic reply codes
 * ("550") and the SMTP command a server was answering when it failed the message. Bounce texts mix
 * these with IP addresses, queue ids and dates, so each finder is anchored to how MTAs actually
 * print them.
 */

export type SmtpCommand = 'CONN' | 'HELO' | 'EHLO' | 'STARTTLS' | 'AUTH' | 'MAIL' | 'RCPT' | 'DATA';

// X.Y.Z with class 2, 4 or 5; not part of an IP address or version number (no digit or dot around
// it), optionally written "#5.1.1" (qmail) or "(5.1.1)".
const STATUS_RE = /(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]|\.\d)/g;

/** All enhanced status codes in `text`, in order of appearance. */
export function findStatusCodes(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(STATUS_RE)) {
    // The subject digit is 0-7 (RFC 3463); "5.12.1" is a version number, not a status.
    if (Number(m[2]) > 9) continue;
    out.push(`${m[1]}.${Number(m[2])}.${Number(m[3])}`);
  }
  return out;
}

/**
 * The most telling status code in a diagnostic: a specific one ("5.1.1") beats a generic ".0.0"
 * one, because servers often print "550 5.0.0 <addr>... 5.1.1 User unknown" style chains.
 */
export function findStatus(text: string): string | null {
  // The code right after a reply code is the remote server's own ("550-'5.7.1 ..." inside a relay's
  // "5.1.0 - Unknown address error" wrapper): it wins.
  const paired = /(?<![\d.])[245]\d\d[ -]['"]?([245]\.\d{1,3}\.\d{1,3})(?![\d.]|\.\d)/.exec(text);
  if (paired) {
    const [c, sub, det] = paired[1].split('.');
    if (Number(sub) <= 9 && !(sub === '0' && det === '0')) return `${c}.${Number(sub)}.${Number(det)}`;
  }
  const all = findStatusCodes(text);
  if (!all.length) return null;
  return all.find((s) => !s.endsWith('.0.0')) ?? all[0];
}

// A reply code is printed first on a reply line, after "said:", after "SMTP;" in a
// Diagnostic-Code, or before the enhanced code; a bare 3-digit number elsewhere (a port, a queue
// id, a count) is not one.
const REPLY_BEFORE_STATUS = /(?<![\d.])([245][0-5]\d)[ -]+[245]\.\d{1,3}\.\d{1,3}(?![\d])/;
const REPLY_AFTER_MARKER = /(?:said:|says:|smtp;|response:|reply:|returned:|error:|<<<|^|\n|\(|\[)\s*([245][0-5]\d)(?=[ -]|$)/im;
const REPLY_ANYWHERE = /(?<![\w.:/-])([45][0-5]\d)(?=[ -][A-Za-z<#(\[])/;

export function findReplyCode(text: string): number | null {
  const m = REPLY_BEFORE_STATUS.exec(text) ?? REPLY_AFTER_MARKER.exec(text) ?? REPLY_ANYWHERE.exec(text);
  return m ? Number(m[1]) : null;
}

// Ordered: the more specific wording first. Each MTA reports the failing step in its own words.
const COMMAND_PATTERNS: [RegExp, SmtpCommand][] = [
  [/in reply to (?:the )?rcpt to command|after rcpt to|did not like our rcpt to|>>> rcpt to|rcpt to:<[^>]*>\s*(?:\.\.\.)?\s*(?:<<<\s*)?[45]\d\d|does not like recipient|\brcpt:\s*<|\brcpt command\b|error on rcpt|during rcpt|rcpt to (?:command )?(?:was )?rejected/i, 'RCPT'],
  [/in reply to (?:the )?mail from command|after mail from|did not like our mail from|>>> mail from|sender was rejected|\bmail from command\b|error on mail from/i, 'MAIL'],
  [/in reply to (?:the )?(?:end of )?data command|after (?:end of )?data|>>> data|didn't like the message|failed on data command|did not like our data|\bdata command\b|after sending (?:the )?message|end of data/i, 'DATA'],
  [/(?:in reply to|after|>>>)\s*starttls/i, 'STARTTLS'],
  [/in reply to (?:the )?ehlo command|after ehlo|>>> ehlo/i, 'EHLO'],
  [/in reply to (?:the )?helo command|after helo|>>> helo/i, 'HELO'],
  [/after initial connection|greeting failed|in reply to (?:the )?(?:initial )?greeting|while connecting|refused to talk to me|connection refused|banner/i, 'CONN'],
];

const UPPERCASE_COMMANDS: [RegExp, SmtpCommand][] = [
  [/(?<![A-Za-z0-9@.])DATA(?![A-Za-z0-9@])/, 'DATA'],
  [/(?<![A-Za-z0-9@.])RCPT(?![A-Za-z0-9@])/, 'RCPT'],
  [/(?<![A-Za-z0-9@.])MAIL F(?:ROM|rom)\b/, 'MAIL'],
  [/(?<![A-Za-z0-9@.])EHLO(?![A-Za-z0-9@])/, 'EHLO'],
  [/(?<![A-Za-z0-9@.])HELO(?![A-Za-z0-9@])/, 'HELO'],
];

/** The SMTP command the remote server rejected, when the text says which. */
export function findCommand(text: string): SmtpCommand | null {
  const flat = text.replace(/\s+/g, ' '); // "(in reply to\n    RCPT TO command)" is folded in Postfix reports
  for (const [re, cmd] of COMMAND_PATTERNS) if (re.test(flat)) return cmd;
  // Last resort: a command name written in capitals as a word ("SMTP:RCPT host ...",
  // "[RCPT_TO]"); the furthest step of the transaction named is the one that failed.
  for (const [re, cmd] of UPPERCASE_COMMANDS) if (re.test(flat)) return cmd;
  return null;
}

/**
 * Which status code to believe when the DSN Status field and the server's own reply disagree.
 * The field is the reporting MTA's summary; the reply is the remote server's. Codes that only say
 * "something failed" (X.0.0, X.Y.0), queue-level codes (4.4.7 expired) and protocol codes
 * (X.5.x) lose to a specific code in the reply; a reply code breaks class ties.
 */
export function preferStatus(field: string | null, inReply: string | null, replyCode: number | null): string | null {
  if (!field) return inReply;
  if (!inReply || field === inReply) return field;
  const replyClass = replyCode !== null ? String(replyCode)[0] : null;
  if (replyClass && field[0] !== inReply[0]) {
    if (replyClass === field[0]) return field;
    if (replyClass === inReply[0]) return inReply;
  }
  const generic = (s: string) => /\.0\.0$/.test(s);
  const vague = (s: string) => /\.0(?:\.|$)/.test(s.slice(1));
  if (generic(field)) return generic(inReply) ? field : inReply;
  if (vague(field) && !vague(inReply)) return inReply;
  if (generic(inReply)) return field;
  if (field === '4.4.7' || field === '4.7.0' || field.startsWith('5.3.') || /^\d\.5\.[1245]$/.test(field)) return inReply;
  if (field === '5.1.1') return vague(inReply) || inReply.startsWith('5.5.') ? field : inReply;
  if (field === '5.1.3' && inReply.startsWith('5.7.')) return inReply;
  return field;
}

/**
 * Multi-line replies ("550-5.7.1 first line / 550-5.7.1 second / 550 5.7.1 last") read as one
 * sentence: the continuation prefixes are dropped so phrases that span lines can match.
 */
export function joinContinuationLines(text: string): string {
  return text.replace(/(?:<<<\s*)?(?<![\w.])([245]\d\d)-(?:[245]\.\d{1,3}\.\d{1,3}\s+)?/g, ' ');
}
