import { decodeHeaderValue, headerValue, type HeaderField } from './mime.ts';

/**
 * Does a message without an RFC 3464 report still announce a delivery failure? Each MTA words it
 * differently, so this counts independent signals — who sent it, its subject, bounce wording in
 * the text, bounce-only headers — and asks for two (or one strong one). A human forwarding an old
 * bounce, or an out-of-office reply from a null sender, should gather at most one.
 */

// Senders that only ever send reports.
const DAEMON_FROM = /(?:^|[<\s"'])(?:mailer-daemon|post_?master|mail-daemon|maildaemon|mail\.?delivery|mmdf|bounces?|noreply-dmarc|daemon|mailer|root|mail administrator|mail delivery (?:subsystem|system|service))(?:[@\s>"']|$)|mail delivery (?:subsystem|system|service)|mailer-daemon|postmaster@|^"?mail administrator|microsoftexchange[0-9a-f]+@|\bamazonses\b|\bsendgrid\b.*bounce/i;

// Subjects of failure reports in the languages seen in bounces.
const BOUNCE_SUBJECT = new RegExp([
  'undeliver', 'undelivered mail', 'returned mail', 'mail delivery failed', 'delivery (?:status notification|failure|failed|report|problem)',
  'failure notice', 'non[- ]?delivery', 'not delivered', 'could not be delivered', 'delivery has failed', 'mail system error',
  'returned to sender', 'message not delivered', 'rejected:', 'unzustellbar', 'nicht zustellbar', 'non remis', 'no entregado',
  'non consegnato', 'échec de la remise', 'notification d.?état de remise', 'warning: could not send message', 'delayed mail',
  'mail could not be delivered', 'failed delivery', 'delivery notification', 'bounce', 'nondeliverable', 'error sending message',
  'message you sent (?:could not|was not)', 'mail failure', 'permanent (?:delivery )?(?:error|failure)', 'returned message',
  'mail error', 'delivery error', 'are not (?:a )?member', 'error sending your (?:mail|message)', 'trouble delivering', 'message delivery (?:failure|failed)', 'nicht zugestellt', 'zustellung fehlgeschlagen',
  '配信不能', '送信できませんでした', 'エラー', 'mail delivery', 'delivery final failure', 'delivery status', 'failed mail',
].join('|'), 'i');

// Body wording of failure reports.
const BOUNCE_TEXT = new RegExp([
  "(?:wasn't|was not|could not be|couldn't be|cannot be|can't be|has not been|not been) (?:able to be )?deliver",
  'unable to deliver', 'delivery (?:to the following|has failed|failed|to these recipients|of your message)', 'permanent(?:ly)? (?:error|fatal error|failure|failed)',
  'undeliverable', 'undelivered', 'returned to sender', 'following address(?:es)? (?:had|failed)', 'this is the mail system at',
  'this is the qmail-send program', 'transcript of session follows', 'delivery status notification', 'your message (?:did not reach|was not delivered|could not be delivered|to .* was rejected|has been blocked|was blocked)',
  'mail delivery failed', 'message could not be delivered', 'recipient address rejected', 'smtp error from remote', 'remote host said',
  'the following (?:message|recipients?|address(?:es)?)(?:\\(s\\))? (?:had|has|have|failed|could not|was|were|did not)', 'did not reach the following', 'failed permanently', 'could not deliver',
  'non[- ]?delivery', 'giving up on', 'not a member of this (?:mailing )?list', 'error message below', 'trouble delivering', 'returned (?:permanent|temporary) errors?', 'retry timeout exceeded', 'rejected your message', '(?:message|mail|recipients?) (?:was|were) rejected',
  'user unknown', 'no such user', 'mailbox (?:is )?(?:full|unavailable)', 'host unknown', 'delivery to the following recipient',
  'i\'m afraid i wasn\'t able', 'unzustellbar', 'konnte nicht zugestellt', 'n.a pas pu .tre remis', 'no se pudo entregar',
  '送信できませんでした', '配信できませんでした', '届きませんでした', 'still (?:trying|being retried)', 'will (?:continue|keep) (?:trying|to try)',
  '(?:delivery|message)(?: to .{1,80}?)? (?:has been|is|was) delayed', 'delayed (?:mail|message|delivery)', 'warning message only',
  '(?:message|mail) (?:has been|was) (?:returned|bounced)', 'diagnostic-code:', 'action: failed', 'status: [45]\\.\\d',
].join('|'), 'i');

// Headers only reports carry.
const STRONG_HEADERS = ['x-failed-recipients', 'x-mailer-daemon', 'x-ses-outgoing-bounce', 'x-postfix-queue-id-bounce'];

export interface BounceSignals { score: number; strong: boolean; reasons: string[] }

export function bounceSignals(headers: HeaderField[], text: string): BounceSignals {
  const reasons: string[] = [];
  const from = decodeHeaderValue(headerValue(headers, 'from') ?? '');
  const subject = decodeHeaderValue(headerValue(headers, 'subject') ?? '');
  const returnPath = headerValue(headers, 'return-path');
  if (DAEMON_FROM.test(from)) reasons.push('from');
  // "Re: delivery status of my order" is a person replying about a delivery, not a report (a
  // forwarded report, "Fwd: Returned mail", still is one).
  if (BOUNCE_SUBJECT.test(subject) && !/^\s*(?:re|aw|sv|vs|rif)\s*:/i.test(subject)) reasons.push('subject');
  if (BOUNCE_TEXT.test(text)) reasons.push('text');
  // A null reverse path only says "automated": reports and auto-replies share it, so it only counts with others.
  if (returnPath !== null && /^<\s*>$/.test(returnPath.trim())) reasons.push('null-sender');
  const strong = headers.some((h) => STRONG_HEADERS.includes(h.name));
  if (strong) reasons.push('bounce-header');
  return { score: reasons.length, strong, reasons };
}

/** Two independent signals, one of them from the content, or a bounce-only header. */
export function looksLikeBounce(s: BounceSignals): boolean {
  if (s.strong) return true;
  const content = s.reasons.includes('text') || s.reasons.includes('subject');
  return content && s.score >= 2;
}
