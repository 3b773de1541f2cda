/**
 * Who may receive mail here. Mailroom is never a relay: a recipient is accepted only when its
 * domain is one of MAILROOM_DOMAIN and its local part names a live inbox. Every classic relay
 * trick is refused as a foreign destination (550 5.7.1), before any lookup:
 *   "x@ext.com"@ours   quoted local part hiding a second address (see relay-guard.ts)
 *   x%ext.com@ours     the percent hack
 *   ext.com!x@ours     UUCP bang path
 *   @ours:x@ext.com    source route; smtp-server strips the route (RFC 5321 §4.1.2), leaving x@ext.com
 *   x@[127.0.0.1]      address literal
 */
export type RecipientClass =
  | { kind: 'local'; username: string; domain: string }
  | { kind: 'foreign'; reason: string };

export function classifyRecipient(address: string, domains: readonly string[]): RecipientClass {
  let addr = address.trim();
  // RFC 5321 §4.5.1: the domainless postmaster must be accepted; it means the primary domain's.
  if (addr.toLowerCase() === 'postmaster') addr = `postmaster@${domains[0]}`;
  const at = addr.lastIndexOf('@');
  if (at <= 0 || at === addr.length - 1) return { kind: 'foreign', reason: 'no domain' };
  const local = addr.slice(0, at);
  const domain = addr.slice(at + 1).toLowerCase().replace(/\.$/, '');
  if (domain.startsWith('[')) return { kind: 'foreign', reason: 'address literal' };
  if (!domains.includes(domain)) return { kind: 'foreign', reason: 'domain not served here' };
  // Routing characters inside a local part of ours would be a relay instruction to some other MTA.
  if (/["@%!:\\,\s]/.test(local)) return { kind: 'foreign', reason: 'routing characters in local part' };
  // Sub-addressing: user+tag@domain delivers to user@domain (the tag is kept in rcpt_to).
  const username = local.toLowerCase().split('+')[0];
  return { kind: 'local', username, domain };
}
