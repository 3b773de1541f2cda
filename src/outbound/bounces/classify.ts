import { isAppleUnsubscribe, isFeedbackReport, parseFeedbackReport } from './arf.ts';
import { autoReplyEvidence, isAutoReply } from './auto-reply.ts';
import { bounceSignals, looksLikeBounce } from './bounce-signals.ts';
import { decideReason } from './decide-reason.ts';
import { addressFromTyped } from './dsn.ts';
import { deliveryStatusRecipients, fromDeliveryStatus } from './dsn-verdict.ts';
import { embeddedReport } from './forwarded-report.ts';
import { isPermanentReply } from './hard-bounce.ts';
import { reasonHint } from './hint-rules.ts';
import { headerValue, parseMime, type MimePart } from './mime.ts';
import { originalMessage } from './original.ts';
import { reportText } from './report-text.ts';
import { parseSesNotification } from './ses-notification.ts';
import { fromSesNotification } from './ses-verdict.ts';
import { findCommand, findStatus } from './smtp-codes.ts';
import { fromText, hasRecipientClues } from './text-verdict.ts';
import type { BounceReason, BounceVerdict } from './types.ts';
import { emptyOriginal, nonFailure, verdict } from './verdict.ts';

export type { BounceReason, BounceVerdict, BouncedRecipient, OriginalMessage } from './types.ts';

/**
 * Bounce / DSN / complaint / auto-reply classification of an inbound message addressed to one of
 * our return paths. The order of the checks matters: complaints and RFC 3464 reports are
 * recognised by their MIME structure first; only then do the heuristics for non-standard bounces
 * run, and auto-replies come last because some MTAs mark their bounces "auto-replied" too.
 */

export async function classifyBounce(raw: Buffer): Promise<BounceVerdict> {
  try {
    return classifyParsed(parseMime(Buffer.isBuffer(raw) ? raw : Buffer.from(raw ?? '')));
  } catch {
    return verdict('not_bounce', [], emptyOriginal());
  }
}

/** For synchronous SMTP failures seen by our own SMTP client: reply code, optional enhanced status, reply text. */
export function classifySmtpReply(code: number, status: string | null, text: string): { reason: BounceReason; hard: boolean } {
  const reply = String(text ?? '');
  const st = status ?? findStatus(reply);
  const diagnostic = `${code} ${st ?? ''} ${reply}`;
  const command = findCommand(reply);
  // Provider rules apply when the reply names the provider ("... - gsmtp", "protection.outlook.com").
  const hint = reasonHint({ headers: [], text: diagnostic, block: diagnostic, address: null, remoteMta: null, status: st, replyCode: code, command, dsnExtensions: {} });
  const reason = decideReason({ status: st, replyCode: code, diagnostic, diagnosticType: 'smtp', command, action: null, hint: hint?.reason ?? null, hintIsFinal: hint?.final });
  return { reason, hard: isPermanentReply(code, st) };
}

function classifyParsed(root: MimePart, depth = 0): BounceVerdict {
  const text = reportText(root);
  const original = originalMessage(root, text);
  const sender = (name: string) => addressFromTyped(headerValue(root.headers, name));

  if (isFeedbackReport(root)) {
    const report = parseFeedbackReport(root);
    // Without Original-Rcpt-To the complainer is the original message's recipient.
    const who = report.recipients.length ? report.recipients : original.to ? original.to.split(', ') : [];
    return verdict('complaint', who.map((a) => nonFailure(a)), original, report.feedbackType);
  }
  if (isAppleUnsubscribe(root)) return verdict('complaint', [nonFailure(sender('from'))], original, 'opt-out');

  const ses = /\\?"(?:notificationType|eventType)\\?"/.test(text) ? parseSesNotification(text) : null;
  if (ses) return fromSesNotification(ses);

  const dsn = deliveryStatusRecipients(root);
  if (dsn.length) return fromDeliveryStatus(dsn, root, text, original);

  const signals = bounceSignals(root.headers, text);
  const auto = autoReplyEvidence(root.headers, text);
  // An auto-reply marker outweighs weak bounce signals, but not a daemon sender or a bounce-only header.
  const daemonish = signals.strong || signals.reasons.includes('from');
  if (isAutoReply(auto) && !daemonish) return verdict('auto_reply', [nonFailure(sender('from'))], original);
  if (looksLikeBounce(signals)) {
    // A wrapper that names no recipient but carries the real report as an attachment (some
    // filters forward bounces that way): the attached report is the one to read.
    const inner = depth === 0 && !hasRecipientClues(root, text) ? embeddedReport(root) : null;
    if (inner) {
      const v = classifyParsed(inner, depth + 1);
      if (v.kind === 'bounce' || v.kind === 'delayed') return v;
    }
    return fromText(root, text, original);
  }
  if (isAutoReply(auto)) return verdict('auto_reply', [nonFailure(sender('from'))], original);
  return verdict('not_bounce', [], original);
}
