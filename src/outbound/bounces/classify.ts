import { isAppleUnsubscribe, isFeedbackReport, parseFeedbackReport } from './arf.ts';
import { autoReplyEvidence, isAutoReply } from './auto-reply.ts';
import { bounceSignals, looksLikeBounce } from './bounce-signals.ts';
import { decideReason } from './decide-reason.ts';
import { clipDiagnostic, diagnosticFromBlock } from './diagnostic-text.ts';
import { addressFromTyped, looksLikeDeliveryStatus, parseDeliveryStatus, withoutDeliveryStatusFields, type DsnRecipientFields } from './dsn.ts';
import { isHardBounce, isPermanentReply } from './hard-bounce.ts';
import { allParts, asTopLevel, headerValue, parseMime, type MimePart } from './mime.ts';
import { reasonHint } from './hint-rules.ts';
import { originalMessage } from './original.ts';
import { normalizeForMatch } from './reasons.ts';
import { addressesIn, recipientBlocks, type RecipientBlock } from './recipient-blocks.ts';
import { reportText } from './report-text.ts';
import { parseSesNotification, type SesNotification } from './ses-notification.ts';
import { findCommand, findReplyCode, findStatus, preferStatus } from './smtp-codes.ts';
import { completeReply } from './transcript.ts';
import type { BounceReason, BounceVerdict, BouncedRecipient, OriginalMessage } from './types.ts';

export type { BounceReason, BounceVerdict, BouncedRecipient, OriginalMessage } from './types.ts';

/**
 * Bounce / DSN / complaint / auto-reply classification of an inbound message addressed to one of
 * our return paths. The order of the checks matters: complaints and RFC 3464 reports are
 * recognised by their MIME structure first; only then do the heuristics for non-standard bounces
 * run, and auto-replies come last because some MTAs mark their bounces "auto-replied" too.
 */

const EMPTY_ORIGINAL: OriginalMessage = { message_id: null, from: null, to: null, subject: null, return_path: null };

const verdict = (kind: BounceVerdict['kind'], recipients: BouncedRecipient[], original: OriginalMessage, feedbackType: string | null = null): BounceVerdict =>
  ({ kind, recipients, original, feedback_type: feedbackType });

export async function classifyBounce(raw: Buffer): Promise<BounceVerdict> {
  try {
    return classifyParsed(parseMime(Buffer.isBuffer(raw) ? raw : Buffer.from(raw ?? '')));
  } catch {
    return verdict('not_bounce', [], { ...EMPTY_ORIGINAL });
  }
}

/** For synchronous SMTP failures seen by our own SMTP client: reply code, optional enhanced status, reply text. */
export function classifySmtpReply(code: number, status: string | null, text: string): { reason: BounceReason; hard: boolean } {
  const st = status ?? findStatus(text ?? '');
  const reason = decideReason({
    status: st, replyCode: code, diagnostic: `${code} ${st ?? ''} ${text ?? ''}`, diagnosticType: 'smtp',
    command: findCommand(text ?? ''), action: null, hint: null,
  });
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

function nonFailure(address: string | null): BouncedRecipient {
  return { address, status: null, reply_code: null, reason: 'undefined', hard: false, diagnostic: null };
}

function fromSesNotification(n: SesNotification): BounceVerdict {
  const id = n.original.messageId;
  const original: OriginalMessage = {
    message_id: id ? (id.includes('@') && !id.startsWith('<') ? `<${id}>` : id) : null,
    from: n.original.from?.toLowerCase() ?? null, to: n.original.to?.toLowerCase() ?? null, subject: n.original.subject, return_path: n.original.source?.toLowerCase() ?? null,
  };
  if (n.type === 'complaint') return verdict('complaint', n.recipients.map((r) => nonFailure(r.address)), original, n.complaintFeedbackType ?? 'abuse');
  if (n.type === 'delivery') return verdict('delivered', n.recipients.map((r) => ({ ...nonFailure(r.address), diagnostic: clipDiagnostic(r.diagnostic) })), original);
  const recipients = n.recipients.map((r): BouncedRecipient => {
    const diag = (r.diagnostic ?? '').replace(/^smtp;\s*/i, '');
    const status = r.status && /^[245]\.\d+\.\d+$/.test(r.status) ? r.status : findStatus(diag);
    const replyCode = findReplyCode(diag);
    const reason = decideReason({ status, replyCode, diagnostic: diag, diagnosticType: 'smtp', command: findCommand(diag), action: r.action, hint: null });
    return { address: r.address, status, reply_code: replyCode, reason, hard: isHardBounce(reason, status, replyCode, diag), diagnostic: clipDiagnostic(diag) };
  });
  const allDelayed = n.recipients.length > 0 && n.recipients.every((r) => r.action === 'delayed');
  return verdict(allDelayed ? 'delayed' : 'bounce', recipients, original);
}

/** DSN recipient blocks from message/delivery-status parts, or from text parts that carry DSN fields. */
function deliveryStatusRecipients(root: MimePart): DsnRecipientFields[] {
  const own = allParts(root).filter((p) => !p.inMessage && !p.children.length);
  const dsnParts = own.filter((p) => /^message\/(?:global-)?delivery-status$/.test(p.contentType));
  const sources = dsnParts.length ? dsnParts : own.filter((p) => p.contentType.startsWith('text/') && looksLikeDeliveryStatus(p.text));
  return sources.flatMap((p) => parseDeliveryStatus(p.text.replace(/^\n+/, '')).recipients);
}

const DELIVERED_ACTIONS = new Set(['delivered', 'relayed', 'expanded']);

function fromDeliveryStatus(fields: DsnRecipientFields[], root: MimePart, reportText: string, original: OriginalMessage): BounceVerdict {
  // The prose only: when the fields sit in a text part they would otherwise read as recipient blocks.
  const text = withoutDeliveryStatusFields(reportText);
  const blocks = blocksOf(root, text);
  const delivered: BouncedRecipient[] = [];
  // Failed and delayed recipients, in the report's order (which is how callers match them up).
  const undelivered: { r: BouncedRecipient; delayed: boolean }[] = [];
  for (const f of fields) {
    const address = f.finalRecipient ?? f.originalRecipient ?? f.actualRecipient;
    const block = findBlock(blocks, [f.finalRecipient, f.originalRecipient, f.actualRecipient], fields.length === 1);
    const diag = completeReply(f.diagnosticCode ?? '', text);
    // The Diagnostic-Code is the server's own words; the text block is the fallback when it is missing.
    // A Status comment that explains ("(mailbox disabled, not accepting messages)") is part of the words.
    const words = (diag ? [diag, f.statusComment ?? ''].join(' ').trim() : '') || f.statusComment || block?.text || (fields.length === 1 ? text : '');
    const replyCode = findReplyCode(diag) ?? (block ? findReplyCode(block.text) : null);
    const status = preferStatus(f.status, findStatus(words), replyCode);
    const action = f.action;
    if ((action && DELIVERED_ACTIONS.has(action)) || status?.startsWith('2.')) {
      delivered.push({ ...nonFailure(address), status, reply_code: replyCode, diagnostic: clipDiagnostic(diag) });
      continue;
    }
    const command = findCommand(`${diag}\n${block?.text ?? ''}`);
    const hint = reasonHint({ headers: root.headers, text, block: words, address, remoteMta: f.remoteMta, status, replyCode, command, dsnExtensions: f.extensions });
    let reason = decideReason({ status, replyCode, diagnostic: words, diagnosticType: f.diagnosticType, command, action, hint: hint?.reason ?? null, hintIsFinal: hint?.final });
    // The remote server said nothing (no Diagnostic-Code): "could not tell" is undefined, not onhold.
    if (reason === 'onhold' && !diag && !f.statusComment) reason = 'undefined';
    const r: BouncedRecipient = {
      address, status, reply_code: replyCode, reason, hard: isHardBounce(reason, status, replyCode, words),
      diagnostic: clipDiagnostic(diag) ?? (block ? diagnosticFromBlock(block.text, address) : null),
    };
    undelivered.push({ r, delayed: action === 'delayed' });
  }
  if (undelivered.some((u) => !u.delayed)) return verdict('bounce', undelivered.map((u) => u.r), original);
  if (undelivered.length) return verdict('delayed', undelivered.map((u) => u.r), original);
  if (delivered.length) return verdict('delivered', delivered, original);
  return verdict('not_bounce', [], original);
}

function blocksOf(root: MimePart, text: string): RecipientBlock[] {
  const exclude = new Set([...addressesIn(headerValue(root.headers, 'from') ?? ''), ...addressesIn(headerValue(root.headers, 'to') ?? '')]);
  const blocks = recipientBlocks(text, exclude);
  return blocks.length ? blocks : recipientBlocks(text, new Set());
}

function findBlock(blocks: RecipientBlock[], addresses: (string | null)[], only: boolean): RecipientBlock | null {
  for (const a of addresses) {
    const b = a ? blocks.find((x) => x.address === a) : undefined;
    if (b) return b;
  }
  return only && blocks.length === 1 ? blocks[0] : null;
}

function hasRecipientClues(root: MimePart, text: string): boolean {
  return root.headers.some((h) => h.name === 'x-failed-recipients') || blocksOf(root, text).length > 0;
}

/** The first attached message that is itself an RFC 3464 report, re-rooted. */
function embeddedReport(root: MimePart): MimePart | null {
  for (const p of allParts(root)) {
    if (p.inMessage || p.contentType !== 'message/rfc822' || !p.children[0]) continue;
    const inner = asTopLevel(p.children[0]);
    if (allParts(inner).some((q) => !q.inMessage && /^message\/(?:global-)?delivery-status$/.test(q.contentType))) return inner;
  }
  return null;
}

/** A bounce without an RFC 3464 report: recipients and reasons come from the text. */
function fromText(root: MimePart, text: string, original: OriginalMessage): BounceVerdict {
  const failedHeader = root.headers.filter((h) => h.name === 'x-failed-recipients').flatMap((h) => addressesIn(h.value));
  let blocks = blocksOf(root, text);
  if (failedHeader.length) {
    // The header is authoritative about who failed; the text only explains why.
    const known = new Map(blocks.map((b) => [b.address, b]));
    blocks = failedHeader.map((a) => known.get(a) ?? { address: a, text: blocks.length === 1 ? blocks[0].text : text });
  }
  if (!blocks.length) {
    const fallback = original.to?.split(', ')[0] ?? null;
    blocks = [{ address: fallback ?? '', text }];
  }
  // "Delayed"/"will retry" notices without a DSN part are still only delays.
  const delayedOnly = /\b(?:delayed|will (?:continue|keep) (?:trying|to try)|will be retried|still (?:trying|being retried)|warning: could not send|warning message only|temporary failure report)/i.test(normalizeForMatch(text))
    && !/(?:permanent|giving up|gave up|failed permanently|could not be delivered)/i.test(text);
  const recipients = blocks.map((b): BouncedRecipient => {
    const status = findStatus(b.text);
    const replyCode = findReplyCode(b.text);
    const command = findCommand(b.text);
    const hint = reasonHint({ headers: root.headers, text, block: b.text, address: b.address || null, remoteMta: null, status, replyCode, command, dsnExtensions: {} });
    const reason = decideReason({ status, replyCode, diagnostic: b.text, diagnosticType: null, command, action: delayedOnly ? 'delayed' : null, hint: hint?.reason ?? null, hintIsFinal: hint?.final });
    return {
      address: b.address || null, status, reply_code: replyCode, reason, hard: isHardBounce(reason, status, replyCode, b.text),
      diagnostic: diagnosticFromBlock(b.text, b.address || null),
    };
  });
  return verdict(delayedOnly ? 'delayed' : 'bounce', recipients, original);
}
