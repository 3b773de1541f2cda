/** The bounce classifier's public types (re-exported by classify.ts, which other code imports). */

export type BounceReason =
  | 'userunknown' | 'mailboxfull' | 'filtered' | 'expired' | 'rejected' | 'blocked' | 'hostunknown' | 'spamdetected'
  | 'policyviolation' | 'authfailure' | 'suspend' | 'requireptr' | 'networkerror' | 'systemerror' | 'notaccept'
  | 'securityerror' | 'mailererror' | 'toomanyconn' | 'norelaying' | 'hasmoved' | 'onhold' | 'mesgtoobig' | 'exceedlimit'
  | 'badreputation' | 'virusdetected' | 'syntaxerror' | 'contenterror' | 'speeding' | 'systemfull' | 'failedstarttls'
  | 'notcompliantrfc' | 'undefined';

export interface BouncedRecipient {
  address: string | null;      // final recipient, lower-cased, no angle brackets
  status: string | null;       // enhanced status code like "5.1.1" if found
  reply_code: number | null;   // SMTP reply code like 550 if found
  reason: BounceReason;
  hard: boolean;               // permanent failure (hard bounce) vs temporary (soft)
  diagnostic: string | null;   // the remote server's diagnostic text, trimmed to <= 500 chars
}

export interface OriginalMessage {
  message_id: string | null;
  from: string | null;
  to: string | null;
  subject: string | null;
  return_path: string | null;
}

export interface BounceVerdict {
  /** bounce: a delivery failure report (DSN or non-standard); delayed: a "still trying" DSN (action=delayed);
   *  delivered: success DSN; auto_reply: vacation / out-of-office (RFC 3834); complaint: ARF feedback report (RFC 5965);
   *  not_bounce: anything else (a human message). */
  kind: 'bounce' | 'delayed' | 'delivered' | 'auto_reply' | 'complaint' | 'not_bounce';
  recipients: BouncedRecipient[];
  /** What the report says about the original message, from its returned message/rfc822 or text/rfc822-headers part, or from quoted headers in the body */
  original: OriginalMessage;
  feedback_type: string | null; // for complaints: abuse, opt-out, auth-failure, ... (ARF Feedback-Type)
}
