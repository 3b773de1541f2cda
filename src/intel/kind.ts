import type { ParsedMessage } from '../mime/parse.ts';
import { classifyBounce } from '../outbound/bounces/classify.ts';

/**
 * What kind of message this is, so an agent (or a campaign) can tell a person's reply from a
 * machine's: `human | auto_reply | out_of_office | bounce | complaint | list | transactional`.
 * Header evidence first — RFC 3834 `Auto-Submitted`, `X-Autoreply`, Exchange's
 * `X-Auto-Response-Suppress`, `Precedence`, `List-Id` — then the report structure (DSN, ARF) through
 * the bounce classifier, only for mail that looks like a report; then text heuristics for
 * out-of-office replies, with the return date when the text states one.
 */
export type Kind = 'human' | 'auto_reply' | 'out_of_office' | 'bounce' | 'complaint' | 'list' | 'transactional';

export interface MessageKind {
  kind: Kind;
  /** Out of office: the day the sender says they are back (YYYY-MM-DD), when the text states one. */
  return_date: string | null;
  evidence: string[];
}

const header = (p: Pick<ParsedMessage, 'headers'>, name: string): string | null =>
  p.headers.find((h) => h.name.toLowerCase() === name)?.value ?? null;

// Subjects and phrases of absence notices, in the languages most often seen (kept short: a false
// "out of office" would stop a campaign, a missed one only costs a follow-up).
const OOO_SUBJECT = /\b(out of (the )?office|ooo|away until|on vacation|on leave|abwesen|absence|absent|fuera de la oficina|hors du bureau|ausente|niet aanwezig)\b/i;
const OOO_TEXT = /\b(out of (the )?office|on (annual |parental |sick )?leave|on vacation|on holiday|away from (the )?office|limited access to (my )?e-?mail|i am (currently )?away|i'?m (currently )?away|back in the office|return(ing)? (to the office )?on)\b/i;
const AUTO_SUBJECT = /^(auto(matic)?[ -]?(reply|response|antwort|réponse)|autoreply|autoresponder)\b|\b(automatic reply|auto-reply)\b/i;

const MONTHS = ['january', 'february', 'march', 'april', 'may', 'june', 'july', 'august', 'september', 'october', 'november', 'december'];
const MONTH_RE = '(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)';
const monthIndex = (m: string) => MONTHS.findIndex((x) => x.startsWith(m.toLowerCase().slice(0, 3)));

/**
 * The return date an absence notice states, resolved against the message date: "until May 5",
 * "back on 5 May 2026", "returning 2026-12-01", "until 12/01". A date without a year is the next
 * such day on or after the message date.
 */
export function returnDate(text: string, sent: Date): string | null {
  const t = text.replace(/\s+/g, ' ');
  const cue = /\b(until|till|through|back on|back|return(?:ing)?(?: on)?|returns?(?: on)?|from)\b[ ,:]*(?:(?:mon|tues|wednes|thurs|fri|satur|sun)day,? )?(?:the )?/i;
  const m = cue.exec(t);
  if (!m) return null;
  const rest = t.slice(m.index + m[0].length, m.index + m[0].length + 40);
  const iso = (y: number, mo: number, d: number) => {
    const date = new Date(Date.UTC(y, mo, d));
    return date.getUTCMonth() === mo && date.getUTCDate() === d ? date.toISOString().slice(0, 10) : null;
  };
  const withYear = (mo: number, d: number, y?: string) => {
    if (y) return iso(Number(y.length === 2 ? `20${y}` : y), mo, d);
    const year = sent.getUTCFullYear();
    const candidate = Date.UTC(year, mo, d);
    return iso(candidate + 86_400_000 < sent.getTime() ? year + 1 : year, mo, d);
  };
  let x: RegExpExecArray | null;
  if ((x = /^(\d{4})-(\d{2})-(\d{2})/.exec(rest))) return iso(Number(x[1]), Number(x[2]) - 1, Number(x[3]));
  if ((x = new RegExp(`^${MONTH_RE}\\.? (\\d{1,2})(?:st|nd|rd|th)?(?:,? (\\d{4}))?`, 'i').exec(rest))) return withYear(monthIndex(x[1]), Number(x[2]), x[3]);
  if ((x = new RegExp(`^(\\d{1,2})(?:st|nd|rd|th)?(?: of)? ${MONTH_RE}\\.?(?:,? (\\d{4}))?`, 'i').exec(rest))) return withYear(monthIndex(x[2]), Number(x[1]), x[3]);
  // Numeric dates are read month/day (the form of the English notices this recognises).
  if ((x = /^(\d{1,2})\/(\d{1,2})(?:\/(\d{2,4}))?/.exec(rest))) return withYear(Number(x[1]) - 1, Number(x[2]), x[3]);
  return null;
}

export async function messageKind(p: Pick<ParsedMessage, 'headers' | 'subject' | 'text' | 'date' | 'from'>, senderBytes: Buffer, mailFrom: string): Promise<MessageKind> {
  const evidence: string[] = [];
  const subject = p.subject ?? '';
  const text = (p.text ?? '').slice(0, 20_000);
  const sent = p.date ?? new Date();
  const ooo = (why: string[]): MessageKind => ({ kind: 'out_of_office', return_date: returnDate(`${subject} ${text}`, sent), evidence: why });

  const contentType = (header(p, 'content-type') ?? '').toLowerCase();
  const fromAddr = (p.from?.address ?? '').toLowerCase();
  const reportLike = /multipart\/report/.test(contentType) || mailFrom === '' || /^(mailer-daemon|postmaster)@/.test(fromAddr);
  if (reportLike) {
    const v = await classifyBounce(senderBytes);
    if (v.kind === 'bounce' || v.kind === 'delayed' || v.kind === 'delivered') return { kind: 'bounce', return_date: null, evidence: [`report: ${v.kind}`] };
    if (v.kind === 'complaint') return { kind: 'complaint', return_date: null, evidence: [`feedback report: ${v.feedback_type ?? 'abuse'}`] };
  }

  const auto = header(p, 'auto-submitted')?.toLowerCase().trim() ?? '';
  if (auto && auto !== 'no') evidence.push(`Auto-Submitted: ${auto}`);
  if (header(p, 'x-autoreply') || header(p, 'x-autorespond')) evidence.push('X-Autoreply');
  if (header(p, 'x-auto-response-suppress') && AUTO_SUBJECT.test(subject)) evidence.push('X-Auto-Response-Suppress with an automatic-reply subject');
  if (AUTO_SUBJECT.test(subject)) evidence.push(`subject: ${subject.slice(0, 80)}`);
  const oooWords = OOO_SUBJECT.test(subject) || OOO_TEXT.test(text);
  if (auto.startsWith('auto-replied') || evidence.length) {
    return oooWords ? ooo([...evidence, 'absence wording']) : { kind: 'auto_reply', return_date: null, evidence };
  }
  // An absence notice without the headers (some clients send them as ordinary mail).
  if (OOO_SUBJECT.test(subject)) return ooo(['absence wording in the subject']);

  if (auto.startsWith('auto-generated')) return { kind: 'transactional', return_date: null, evidence: [`Auto-Submitted: ${auto}`] };
  const precedence = header(p, 'precedence')?.toLowerCase().trim() ?? '';
  if (header(p, 'list-id') || header(p, 'list-unsubscribe') || precedence === 'list' || precedence === 'bulk') {
    return { kind: 'list', return_date: null, evidence: [header(p, 'list-id') ? 'List-Id' : header(p, 'list-unsubscribe') ? 'List-Unsubscribe' : `Precedence: ${precedence}`] };
  }
  if (/^(no-?reply|do-?not-?reply|notifications?|alerts?|billing|receipts?)[@+.]/.test(fromAddr)) {
    return { kind: 'transactional', return_date: null, evidence: [`sender ${fromAddr}`] };
  }
  return { kind: 'human', return_date: null, evidence: [] };
}
