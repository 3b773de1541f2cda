import type { BounceVerdict, BouncedRecipient, OriginalMessage } from './types.ts';

/** Small constructors shared by the verdict builders. */

export const emptyOriginal = (): OriginalMessage => ({ message_id: null, from: null, to: null, subject: null, return_path: null });

export const verdict = (kind: BounceVerdict['kind'], recipients: BouncedRecipient[], original: OriginalMessage, feedbackType: string | null = null): BounceVerdict =>
  ({ kind, recipients, original, feedback_type: feedbackType });

/** A recipient of a report that is not a failure (complaint, auto-reply, success DSN). */
export function nonFailure(address: string | null): BouncedRecipient {
  return { address, status: null, reply_code: null, reason: 'undefined', hard: false, diagnostic: null };
}
