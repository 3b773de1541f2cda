import type { BounceReason } from './types.ts';

/**
 * Hard or soft, for a bounce report (sisimai's definition, which the corpus labels follow): a hard
 * bounce says the address itself is bad, so sending to it again is pointless whatever the message.
 * That is true of unknown users and domains and moved mailboxes, and of a host that accepts no
 * mail at all when it says so permanently. Everything else (a full mailbox, spam filters, policy,
 * blocks, expiry) may work for the next message, so it is soft even when the reply was a 5xx.
 */
const ADDRESS_IS_BAD: ReadonlySet<BounceReason> = new Set<BounceReason>(['userunknown', 'hostunknown', 'hasmoved']);

export function isHardBounce(reason: BounceReason, status: string | null, replyCode: number | null, diagnostic: string): boolean {
  if (ADDRESS_IS_BAD.has(reason)) return true;
  if (reason !== 'notaccept') return false;
  // notaccept: hard unless the server said it is temporary (4xx, or "temporary" wording).
  const cls = status?.[0] ?? (replyCode !== null ? String(replyCode)[0] : null);
  if (cls === '5') return true;
  if (cls === '4') return false;
  return !/\btemporar|\bpersistent/i.test(diagnostic);
}

/**
 * Hard or soft for a reply our own SMTP client received: here "hard" means permanent — do not retry
 * this message to this address — which is what the reply class says (RFC 5321 §4.2.1): 5xx is
 * permanent, 4xx transient. Enhanced status class wins when the two disagree (some servers send
 * "550 4.2.2").
 */
export function isPermanentReply(code: number, status: string | null): boolean {
  const cls = status?.[0] ?? String(code)[0];
  return cls === '5';
}
