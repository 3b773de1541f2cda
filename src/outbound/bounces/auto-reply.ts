import { decodeHeaderValue, headerValue, type HeaderField } from './mime.ts';
import { normalizeForMatch, says } from './reasons.ts';

/**
 * Out-of-office and other automatic replies (RFC 3834). The standard marker is
 * "Auto-Submitted: auto-replied"; many responders use their own headers or only a subject prefix.
 * Callers check for delivery reports first: some MTAs mark their bounces auto-replied as well.
 */

// Subjects autoresponders put on their replies, in the languages seen in the wild.
const AUTO_REPLY_SUBJECT = new RegExp([
  '^(?:auto(?:matic)?[ -]?(?:reply|response|answer)|autoreply|auto-?r[ée]ponse|r[ée]ponse automatique|respuesta autom[aá]tica',
  'risposta automatica|automatische antwort|abwesenheitsnotiz|out of (?:the )?office|ooo\\b|away from (?:the |my )?office|vacation',
  'on vacation|on leave|away until|i am away|absence|abwesend|自動応答|自動返信|不在)',
].join('|'), 'i');

export interface AutoReplyEvidence {
  /** a header only autoresponders set */
  marked: boolean;
  /** some header says "sent by a machine" (Auto-Submitted of any kind, Precedence, a null sender) */
  automated: boolean;
  subject: boolean;
  body: boolean;
}

export function autoReplyEvidence(headers: HeaderField[], text: string): AutoReplyEvidence {
  const has = (name: string) => headers.some((h) => h.name === name);
  const autoSubmitted = (headerValue(headers, 'auto-submitted') ?? '').toLowerCase();
  const precedence = (headerValue(headers, 'precedence') ?? '').toLowerCase();
  const marked =
    autoSubmitted.startsWith('auto-replied') ||
    has('x-autoreply') || has('x-autorespond') || has('x-autoresponder') || has('x-vacation') ||
    /vacation/i.test(headerValue(headers, 'x-apple-action') ?? '') ||
    precedence.includes('auto_reply') ||
    // Exchange sets this on its Out-of-Office replies, together with the subject prefix checked below.
    (has('x-auto-response-suppress') && has('x-ms-exchange-inbox-rules-loop'));
  const automated =
    (autoSubmitted !== '' && !autoSubmitted.startsWith('no')) || /bulk|junk|list|auto/.test(precedence) ||
    has('x-auto-response-suppress') || /^<\s*>$/.test((headerValue(headers, 'return-path') ?? '').trim());
  const subject = AUTO_REPLY_SUBJECT.test(decodeHeaderValue(headerValue(headers, 'subject') ?? '').trim());
  const body = says('vacation', normalizeForMatch(text)) || /\b(?:i am|i'm|i will be) (?:currently )?(?:out of (?:the )?office|away|on (?:vacation|holiday|leave))/i.test(text);
  return { marked, automated, subject, body };
}

/**
 * A marked reply; or an out-of-office subject on a message that is machine-sent or says it is out
 * of office. A subject alone could be a person writing about their holiday.
 */
export function isAutoReply(e: AutoReplyEvidence): boolean {
  return e.marked || (e.subject && (e.body || e.automated));
}
