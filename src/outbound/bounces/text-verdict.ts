import { decideReason } from './decide-reason.ts';
import { diagnosticFromBlock } from './diagnostic-text.ts';
import { isHardBounce } from './hard-bounce.ts';
import { reasonHint } from './hint-rules.ts';
import type { MimePart } from './mime.ts';
import { normalizeForMatch } from './reasons.ts';
import { addressesIn, reportRecipientBlocks } from './recipient-blocks.ts';
import { findCommand, findReplyCode, findStatus } from './smtp-codes.ts';
import type { BounceVerdict, BouncedRecipient, OriginalMessage } from './types.ts';
import { verdict } from './verdict.ts';

/**
 * The verdict for a bounce without an RFC 3464 report (qmail, Exim, old Postfix and Sendmail,
 * provider-specific formats): recipients come from X-Failed-Recipients or from the lines of the
 * text that name them, reasons from each recipient's block of text.
 */

/** Whether the report names any recipient itself. */
export function hasRecipientClues(root: MimePart, text: string): boolean {
  return root.headers.some((h) => h.name === 'x-failed-recipients') || reportRecipientBlocks(root, text).length > 0;
}

/** A bounce without an RFC 3464 report: recipients and reasons come from the text. */
export function fromText(root: MimePart, text: string, original: OriginalMessage): BounceVerdict {
  const failedHeader = root.headers.filter((h) => h.name === 'x-failed-recipients').flatMap((h) => addressesIn(h.value)).slice(0, 500);
  let blocks = reportRecipientBlocks(root, text);
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
