import addressparser from 'nodemailer/lib/addressparser';
import { MailroomError } from '../errors.ts';

/**
 * Recipient and sender validation for the send API. The addresses are parsed with nodemailer's own
 * addressparser — the parser that will write the headers and the envelope — because routing
 * decisions made with a different parser than the one that delivers are how mail ends up at an
 * unintended domain (GHSA-mm7p-fcc7-pg87). Each input string must be exactly one address.
 */
export interface Mailbox { address: string; name: string }

// Dot-atom local part or a quoted string without controls; a domain of LDH labels (A-labels for IDN).
const LOCAL = /^(?:[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*|"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*")$/;
const LABEL = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;

export const hasLineBreak = (s: string): boolean => /[\r\n\u0000]/.test(s);

export function isValidAddress(address: string): boolean {
  if (address.length > 254) return false;
  const at = address.lastIndexOf('@');
  if (at <= 0) return false;
  const local = address.slice(0, at);
  const domain = address.slice(at + 1);
  if (local.length > 64 || !LOCAL.test(local)) return false;
  const labels = domain.split('.');
  // A bare host ("user@localhost") or an address literal is not something an agent should mail.
  return labels.length >= 2 && labels.every((l) => LABEL.test(l)) && !/^\d+$/.test(labels[labels.length - 1]);
}

/** One "Name <user@example.com>" or "user@example.com" string → a validated mailbox. */
export function parseMailbox(input: string, field: string): Mailbox {
  if (hasLineBreak(input)) throw new MailroomError('header_injection', `${field}: line breaks are not allowed in an address`);
  const parsed = addressparser(input, { flatten: true });
  if (parsed.length !== 1 || !parsed[0].address) {
    throw new MailroomError('invalid_address', `${field}: "${input.slice(0, 100)}" is not one email address`);
  }
  const { address, name } = parsed[0];
  if (!isValidAddress(address)) throw new MailroomError('invalid_address', `${field}: "${address.slice(0, 100)}" is not a valid email address`);
  // The domain is case-insensitive and is lower-cased; the local part is delivered as written
  // (RFC 5321 §2.4) and only compared case-insensitively (suppressions, dedupe: `addressKey`).
  const at = address.lastIndexOf('@');
  return { address: `${address.slice(0, at)}@${address.slice(at + 1).toLowerCase()}`, name: name ?? '' };
}

/** The form addresses are compared in: suppression and dedupe must not be bypassed by case. */
export const addressKey = (address: string): string => address.toLowerCase();

export const domainOf = (address: string): string => address.slice(address.lastIndexOf('@') + 1).toLowerCase();
