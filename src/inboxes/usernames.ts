import { randomInt } from 'node:crypto';

/**
 * Local parts Mailroom accepts for inboxes: lowercase letters, digits, and `.`, `_`, `-` inside.
 * Deliberately narrower than RFC 5321 allows: no quotes, `%`, `!`, `+` or `@`, so an inbox name can
 * never be confused with a relay trick (`x%ext.com@ours`, `"x@ext"@ours`) or a sub-address.
 */
export const USERNAME_RE = /^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$/;

export function validUsername(u: string): boolean {
  return USERNAME_RE.test(u) && !u.includes('..');
}

const ADJECTIVES = ['amber', 'brisk', 'calm', 'clever', 'bright', 'eager', 'gentle', 'quiet', 'rapid', 'steady', 'swift', 'tidy', 'vivid', 'witty', 'bold', 'keen', 'lucky', 'merry', 'noble', 'sunny'];
const NOUNS = ['otter', 'falcon', 'maple', 'harbor', 'comet', 'river', 'meadow', 'cedar', 'lantern', 'pebble', 'heron', 'willow', 'summit', 'beacon', 'orchid', 'canyon', 'ember', 'glacier', 'kestrel', 'tulip'];

/** A readable, probably-unique username such as `brisk-otter-4821`. The caller retries on collision. */
export function generateUsername(): string {
  return `${ADJECTIVES[randomInt(ADJECTIVES.length)]}-${NOUNS[randomInt(NOUNS.length)]}-${randomInt(1000, 10000)}`;
}

/** Usernames that automatic naming never picks: role addresses an operator should create on purpose. */
export const RESERVED = new Set(['postmaster', 'abuse', 'hostmaster', 'webmaster', 'mailer-daemon', 'noreply', 'no-reply', 'root', 'admin', 'security']);
