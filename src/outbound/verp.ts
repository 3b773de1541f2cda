/**
 * VERP (variable envelope return path): every message Mailroom sends has the return path
 * `bounces+<message id>@<sending domain>`, so an asynchronous bounce names the exact send it is
 * about, whatever the remote server quotes (or fails to quote) of the original message.
 */
import { parseUnsubscribeAddress } from './unsubscribe.ts';

const VERP = /^bounces\+(msg_[0-9a-z]{26})@([^@\s]+)$/i;

export const verpAddress = (messageId: string, domain: string): string => `bounces+${messageId}@${domain}`;

/** The outbound message id a VERP address names, or null. */
export function parseVerp(address: string): { messageId: string; domain: string } | null {
  const m = VERP.exec(address.trim());
  return m ? { messageId: m[1].toLowerCase(), domain: m[2].toLowerCase() } : null;
}

/**
 * Whether received mail may be a report (or a mailto: unsubscribe request, RFC 2369) about mail we sent (a DSN, an ARF complaint, an
 * auto-reply): it came to a VERP address, or with the null reverse-path that RFC 3464 §2 and RFC
 * 5321 §4.5.5 require of delivery reports. Only these are run through the bounce classifier.
 */
export const mayBeReport = (mailFrom: string, rcptTo: string): boolean => mailFrom === '' || parseVerp(rcptTo) !== null || parseUnsubscribeAddress(rcptTo) !== null;
