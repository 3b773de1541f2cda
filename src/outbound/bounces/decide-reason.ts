import { normalizeForMatch, says, type PhraseFamily } from './reasons.ts';
import { joinContinuationLines, type SmtpCommand } from './smtp-codes.ts';
import { reasonOfStatus, VAGUE_REASONS } from './status-reasons.ts';
import type { BounceReason } from './types.ts';

/**
 * Everything known about one failed recipient, and the rules that turn it into a reason. The order
 * of the checks is the substance here: a specific status code decides unless the text names
 * something more specific; phrases are tried from the most to the least specific family; the reply
 * code and the DSN action are the last resort.
 */
export interface Evidence {
  status: string | null;
  replyCode: number | null;
  /** the remote server's words (Diagnostic-Code, or the per-recipient text of a non-DSN bounce) */
  diagnostic: string;
  /** Diagnostic-Code type: "smtp", "x-unix", "x-postfix", ... (null when there is none) */
  diagnosticType: string | null;
  command: SmtpCommand | null;
  action: string | null;
  /** a reason a software- or provider-specific rule already settled on */
  hint: BounceReason | null;
  /** false when the hint comes from a reporting MTA that uses it loosely (see decideReason) */
  hintIsFinal?: boolean;
}

// Commands that come before the message is sent: a rejection there cannot be about content.
const BEFORE_DATA: ReadonlySet<SmtpCommand> = new Set<SmtpCommand>(['CONN', 'HELO', 'EHLO', 'STARTTLS', 'AUTH', 'MAIL', 'RCPT']);
const CONNECTION_PHASE: ReadonlySet<SmtpCommand> = new Set<SmtpCommand>(['CONN', 'HELO', 'EHLO']);

// The recipient exists but will not take mail from this sender.
const RECIPIENT_REFUSES = /recipient preferences|refuses? to (?:receive|accept)|blocked by the recipient|only accepting mail from/;

type Probe = (e: Evidence, text: string, byStatus: BounceReason | null) => boolean;

/**
 * First pass, most specific first. A probe says yes when the status code points at its reason
 * (with exceptions where servers misuse the code) or when the text says so in a context where it
 * can be meant (e.g. "filtered" only after DATA: before it the server has not seen the message).
 */
const FIRST_PASS: [BounceReason, Probe][] = [
  ['mailboxfull', (_e, t, s) => s === 'mailboxfull' || says('mailboxfull', t)],
  // 5.2.3 is "message length exceeds administrative limit": exceedlimit, not mesgtoobig.
  ['mesgtoobig', (e, t, s) => s === 'mesgtoobig' || (s !== 'exceedlimit' && e.status !== '5.2.3' && says('mesgtoobig', t))],
  ['exceedlimit', (_e, t, s) => s === 'exceedlimit' || says('exceedlimit', t)],
  // 525 is "user account disabled" (RFC 5248 registry).
  ['suspend', (e, t) => e.replyCode === 525 || says('suspend', t)],
  ['hasmoved', (_e, t, s) => s === 'hasmoved' || says('hasmoved', t)],
  ['norelaying', (e, t) => !(e.command && CONNECTION_PHASE.has(e.command)) && says('norelaying', t)],
  ['authfailure', (_e, t, s) => s === 'authfailure' || says('authfailure', t)],
  ['userunknown', (e, t, s) => {
    if (s === 'userunknown') {
      // Servers answer 5.1.1 for relaying, blocking, full mailboxes and bad senders too, and for
      // recipients who exist but refuse the sender.
      const other: PhraseFamily[] = ['norelaying', 'blocked', 'mailboxfull', 'hasmoved', 'rejected', 'notaccept'];
      return !other.some((f) => says(f, t)) && !RECIPIENT_REFUSES.test(t);
    }
    // Without the code, "unknown user" wording counts only when the server said it to RCPT TO:
    // said after DATA (or where the report does not say), it is a filter's answer (below).
    return e.command === 'RCPT' && says('userunknown', t);
  }],
  ['filtered', (e, t, s) => {
    if (s === 'filtered') return says('userunknown', t) || says('filtered', t);
    if (e.command && BEFORE_DATA.has(e.command)) return false;
    return says('filtered', t) || says('userunknown', t);
  }],
  ['requireptr', (_e, t, s) => s === 'requireptr' || says('requireptr', t)],
  ['notcompliantrfc', (_e, t) => says('notcompliantrfc', t)],
  ['badreputation', (_e, t) => says('badreputation', t)],
  ['contenterror', (e, t, s) => !spamProbe(e, t, s) && (s === 'contenterror' || says('contenterror', t))],
  ['rejected', (e, t, s) => {
    if (s === 'rejected') return true;
    // Refused at MAIL FROM: about the sender, whatever the wording ("Access denied").
    if (e.command === 'MAIL') return says('rejected', t) || (/access denied/.test(t) && !says('blocked', t));
    if (e.command === 'DATA' && s !== 'userunknown') return says('rejected', t);
    if (s === null || s === 'securityerror' || s === 'systemerror') return says('rejected', t);
    return false;
  }],
  ['hostunknown', (_e, t, s) => (s === 'hostunknown' ? !says('networkerror', t) : says('hostunknown', t))],
  ['spamdetected', (e, t, s) => spamProbe(e, t, s)],
  ['speeding', (_e, t) => says('speeding', t)],
  ['toomanyconn', (_e, t, s) => s === 'toomanyconn' || says('toomanyconn', t)],
  ['blocked', (_e, t, s) => s === 'blocked' || says('blocked', t)],
];

function spamProbe(e: Evidence, t: string, s: BounceReason | null): boolean {
  if (!e.status) return false; // spam wording without any status is usually a quoted policy page
  if (s === 'spamdetected') return true;
  if (e.command && BEFORE_DATA.has(e.command)) return false;
  return says('spamdetected', t);
}

/** Second pass: wording that only matters when the status code did not settle it. */
const SECOND_PASS: PhraseFamily[] = [
  'mailboxfull', 'authfailure', 'badreputation', 'speeding', 'spamdetected', 'virusdetected', 'policyviolation', 'norelaying',
  'systemerror', 'networkerror', 'suspend', 'contenterror', 'systemfull', 'notaccept', 'expired', 'failedstarttls',
  'securityerror', 'mailererror',
];

export function decideReason(e: Evidence): BounceReason {
  const text = normalizeForMatch(joinContinuationLines(e.diagnostic));
  const byStatus = reasonOfStatus(e.status);
  if (e.hint && (e.hintIsFinal !== false || !VAGUE_REASONS.has(e.hint))) return e.hint;
  if (e.hint) {
    // A vague hint ("user unknown" from an MTA that says so for everything) stands unless a more
    // specific family, tried in the usual order, speaks first.
    for (const [reason, probe] of FIRST_PASS) if (reason === e.hint || probe(e, text, byStatus)) return reason;
    return e.hint;
  }
  // Phrase probes read SMTP replies; a local delivery agent's error (X-Unix) is a different language.
  const smtpLike = !e.diagnosticType?.startsWith('x-unix');

  // STARTTLS failures and the 523/524/538 encryption replies (RFC 4954, 5248) are failedstarttls.
  if (e.command === 'STARTTLS' || (e.replyCode !== null && [523, 524, 538].includes(e.replyCode))) return 'failedstarttls';

  if (smtpLike) {
    for (const [reason, probe] of FIRST_PASS) if (probe(e, text, byStatus)) return reason;
  }
  // 521 and 556 mean "this host/domain does not accept mail" (RFC 7504), unless the words said more.
  if (e.replyCode === 521 || e.replyCode === 556) return 'notaccept';

  // A specific status code with SMTP wording is trusted as it is.
  if (byStatus && !VAGUE_REASONS.has(byStatus) && e.diagnosticType === 'smtp') return byStatus;
  for (const f of SECOND_PASS) if (says(f, text)) return f as BounceReason;
  if (byStatus) return byStatus;

  const subject = e.status?.slice(0, 3);
  if (subject === '5.6' || subject === '4.6') return 'contenterror';
  if (subject === '5.7' || subject === '4.7') return 'securityerror';
  if (e.diagnosticType?.startsWith('x-unix')) return 'mailererror';
  // 501-507 and 401-407 are command syntax errors (RFC 5321 §4.2.2).
  if (e.replyCode !== null && ((e.replyCode > 500 && e.replyCode < 508) || (e.replyCode > 400 && e.replyCode < 408))) return 'syntaxerror';
  if (e.action === 'delayed' || e.action === 'expired') return 'expired';
  if (e.command && CONNECTION_PHASE.has(e.command)) return 'blocked';
  return text.trim() ? 'onhold' : 'undefined';
}
