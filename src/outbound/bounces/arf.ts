import { addressFromTyped } from './dsn.ts';
import { allParts, headerValue, parseHeaderBlock, type MimePart } from './mime.ts';

/**
 * Complaints: RFC 5965 Abuse Reporting Format (multipart/report; report-type=feedback-report with a
 * message/feedback-report part), and Apple Mail's unsubscribe message, which is a one-line opt-out
 * request marked with X-Apple-Unsubscribe (the mail client sends it for the user when they press
 * "Unsubscribe" on a list message).
 */

export interface FeedbackReport {
  feedbackType: string;
  /** who complained: Original-Rcpt-To or Removal-Recipient fields; empty when the report omits them */
  recipients: string[];
}

function feedbackPart(root: MimePart): MimePart | null {
  return allParts(root).find((p) => !p.inMessage && p.contentType === 'message/feedback-report') ?? null;
}

export function isFeedbackReport(root: MimePart): boolean {
  return (root.contentType === 'multipart/report' && /feedback-report/i.test(root.params['report-type'] ?? '')) || feedbackPart(root) !== null;
}

export function parseFeedbackReport(root: MimePart): FeedbackReport {
  const part = feedbackPart(root);
  // Some reporters send the fields as the body of the part, some (wrongly) as its headers.
  const fields = part ? [...parseHeaderBlock(part.text.replace(/^\n+/, '')), ...part.headers] : [];
  const feedbackType = (headerValue(fields, 'feedback-type') ?? 'abuse').toLowerCase().trim();
  const recipients: string[] = [];
  for (const f of fields) {
    if (f.name !== 'original-rcpt-to' && f.name !== 'removal-recipient') continue;
    const a = addressFromTyped(f.value);
    if (a && !recipients.includes(a)) recipients.push(a);
  }
  return { feedbackType, recipients };
}

/** Apple Mail "unsubscribe" requests: an opt-out complaint from the message's author. */
export function isAppleUnsubscribe(root: MimePart): boolean {
  return /^\s*true\s*$/i.test(headerValue(root.headers, 'x-apple-unsubscribe') ?? '');
}
