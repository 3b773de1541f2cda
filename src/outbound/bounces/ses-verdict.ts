import { decideReason } from './decide-reason.ts';
import { clipDiagnostic } from './diagnostic-text.ts';
import { isHardBounce } from './hard-bounce.ts';
import type { SesNotification } from './ses-notification.ts';
import { findCommand, findReplyCode, findStatus } from './smtp-codes.ts';
import type { BounceVerdict, BouncedRecipient, OriginalMessage } from './types.ts';
import { nonFailure, verdict } from './verdict.ts';

/** The verdict for an Amazon SES notification (see ses-notification.ts for the format). */
export function fromSesNotification(n: SesNotification): BounceVerdict {
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
