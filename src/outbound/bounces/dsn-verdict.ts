import { decideReason } from './decide-reason.ts';
import { clipDiagnostic, diagnosticFromBlock } from './diagnostic-text.ts';
import { looksLikeDeliveryStatus, parseDeliveryStatus, withoutDeliveryStatusFields, type DsnRecipientFields } from './dsn.ts';
import { isHardBounce } from './hard-bounce.ts';
import { reasonHint } from './hint-rules.ts';
import { allParts, type MimePart } from './mime.ts';
import { reportRecipientBlocks, type RecipientBlock } from './recipient-blocks.ts';
import { findCommand, findReplyCode, findStatus, preferStatus } from './smtp-codes.ts';
import { completeReply } from './transcript.ts';
import type { BounceVerdict, BouncedRecipient, OriginalMessage } from './types.ts';
import { nonFailure, verdict } from './verdict.ts';

/**
 * The verdict for an RFC 3464 report: one recipient per DSN recipient block, read from its
 * fields, with the human-readable text as the fallback for what the fields leave out.
 */

/** DSN recipient blocks from message/delivery-status parts, or from text parts that carry DSN fields. */
export function deliveryStatusRecipients(root: MimePart): DsnRecipientFields[] {
  const own = allParts(root).filter((p) => !p.inMessage && !p.children.length);
  const dsnParts = own.filter((p) => /^message\/(?:global-)?delivery-status$/.test(p.contentType));
  const sources = dsnParts.length ? dsnParts : own.filter((p) => p.contentType.startsWith('text/') && looksLikeDeliveryStatus(p.text));
  return sources.flatMap((p) => parseDeliveryStatus(p.text.replace(/^\n+/, '')).recipients);
}

const DELIVERED_ACTIONS = new Set(['delivered', 'relayed', 'expanded']);

export function fromDeliveryStatus(fields: DsnRecipientFields[], root: MimePart, reportText: string, original: OriginalMessage): BounceVerdict {
  // The prose only: when the fields sit in a text part they would otherwise read as recipient blocks.
  const text = withoutDeliveryStatusFields(reportText);
  const blocks = reportRecipientBlocks(root, text);
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
      diagnostic: clipDiagnostic(diag) ?? clipDiagnostic(f.statusComment) ?? diagnosticFromBlock(block?.text ?? (fields.length === 1 ? text : ''), address),
    };
    undelivered.push({ r, delayed: action === 'delayed' });
  }
  if (undelivered.some((u) => !u.delayed)) return verdict('bounce', undelivered.map((u) => u.r), original);
  if (undelivered.length) return verdict('delayed', undelivered.map((u) => u.r), original);
  if (delivered.length) return verdict('delivered', delivered, original);
  return verdict('not_bounce', [], original);
}

function findBlock(blocks: RecipientBlock[], addresses: (string | null)[], only: boolean): RecipientBlock | null {
  for (const a of addresses) {
    const b = a ? blocks.find((x) => x.address === a) : undefined;
    if (b) return b;
  }
  return only && blocks.length === 1 ? blocks[0] : null;
}
