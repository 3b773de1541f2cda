import { BlockList, isIP } from 'node:net';
import { isNoData, type Resolver } from '../dns/resolver.ts';
import { MailroomError, type ErrorCode } from '../errors.ts';

/**
 * The SSRF guard for URLs Mailroom requests on someone else's say (OWASP API7): webhook URLs, and a
 * campaign's own model endpoint (`llm.base_url`, orchestrator/llm/egress.ts). A URL is parsed once
 * with the WHATWG parser — the same one the delivery code uses, so `http://2130706433/` or
 * `http://0x7f.1/` are judged as the 127.0.0.1 they will connect to — then EVERY address its name
 * resolves to is judged, and one of them is returned as the pinned address the delivery connects
 * to (no second lookup to rebind).
 * Ranges are matched with node's BlockList; the only bit handling here is pulling an IPv4 address
 * out of the IPv6 forms that embed one (mapped, NAT64, compatible, 6to4), to judge that instead.
 */

type Range = readonly [network: string, prefix: number, reason: string];

// The IANA special-purpose registries (RFC 6890 and successors): anything not globally reachable.
const V4_RANGES: Range[] = [
  ['0.0.0.0', 8, 'unspecified'], // "this network": 0.0.0.0 connects to the local host on Linux
  ['10.0.0.0', 8, 'private'],
  ['100.64.0.0', 10, 'cgnat'], // carrier-grade NAT: often the cloud provider's internal network
  ['127.0.0.0', 8, 'loopback'],
  ['169.254.0.0', 16, 'link-local'], // incl. 169.254.169.254, the cloud metadata service
  ['172.16.0.0', 12, 'private'],
  ['192.0.0.0', 24, 'reserved'], // IETF protocol assignments
  ['192.0.2.0', 24, 'documentation'],
  ['192.88.99.0', 24, 'reserved'], // deprecated 6to4 relay anycast
  ['192.168.0.0', 16, 'private'],
  ['198.18.0.0', 15, 'benchmarking'],
  ['198.51.100.0', 24, 'documentation'],
  ['203.0.113.0', 24, 'documentation'],
  ['224.0.0.0', 4, 'multicast'],
  ['240.0.0.0', 4, 'reserved'], // incl. 255.255.255.255 (limited broadcast)
];

// Judged before the IPv4-embedding prefixes: ::/96 (ipv4-compatible) would otherwise swallow them.
const V6_EXACT: Range[] = [
  ['::', 128, 'unspecified'],
  ['::1', 128, 'loopback'],
];

const V6_RANGES: Range[] = [
  ['64:ff9b:1::', 48, 'private'], // local-use NAT64 (RFC 8215): the translator sits inside our network
  ['100::', 64, 'reserved'], // discard-only
  ['2001::', 32, 'reserved'], // Teredo: tunnels to an address we cannot see
  ['2001:db8::', 32, 'documentation'],
  ['3fff::', 20, 'documentation'], // RFC 9637
  ['fc00::', 7, 'private'], // unique local, incl. fd00::/8
  ['fe80::', 10, 'link-local'],
  ['fec0::', 10, 'private'], // deprecated site-local, still routed by some stacks
  ['ff00::', 8, 'multicast'],
];

// IPv6 forms that carry an IPv4 address in their low 32 bits: the connection reaches that IPv4 host
// (mapped: the local stack; NAT64: a translator), so `[::ffff:127.0.0.1]` is loopback, not public.
const V4_EMBEDDING: Range[] = [
  ['::ffff:0:0', 96, 'ipv4-mapped'],
  ['::ffff:0:0:0', 96, 'ipv4-translated'], // SIIT (RFC 2765)
  ['64:ff9b::', 96, 'nat64'],
  ['::', 96, 'ipv4-compatible'], // deprecated; V6_EXACT is judged before this
];

/** One BlockList per reason, so a match can say why. Separate families: BlockList matches an
 * IPv4 rule against `::ffff:a.b.c.d` and an `::ffff:0:0/96` rule against any IPv4 address. */
function byReason(ranges: Range[], family: 'ipv4' | 'ipv6'): [string, BlockList][] {
  const lists = new Map<string, BlockList>();
  for (const [net, prefix, reason] of ranges) {
    if (!lists.has(reason)) lists.set(reason, new BlockList());
    lists.get(reason)!.addSubnet(net, prefix, family);
  }
  return [...lists];
}

const V4 = byReason(V4_RANGES, 'ipv4');
const V6_FIRST = byReason(V6_EXACT, 'ipv6');
const V6 = byReason(V6_RANGES, 'ipv6');
const EMBEDDING = byReason(V4_EMBEDDING, 'ipv6');
const SIX_TO_FOUR = byReason([['2002::', 16, '6to4']], 'ipv6');

const match = (lists: [string, BlockList][], ip: string, family: 'ipv4' | 'ipv6'): string | null =>
  lists.find(([, list]) => list.check(ip, family))?.[0] ?? null;

/** The 8 hextets of an IPv6 address. The URL parser canonicalises first, so a dotted tail
 * (`::ffff:127.0.0.1`) arrives as hex and `::` is the only thing left to expand. */
function hextets(ip: string): number[] {
  const canonical = new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  const [head, tail] = canonical.split('::');
  const parse = (s: string | undefined) => (s ? s.split(':').map((h) => parseInt(h, 16)) : []);
  const left = parse(head);
  const right = parse(tail);
  return [...left, ...Array(8 - left.length - right.length).fill(0), ...right];
}

const dotted = (hi: number, lo: number): string => `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;

/** The reason an IPv4 address embedded in an IPv6 one is refused, prefixed with the form. */
function embeddedReason(kind: string, v4: string): string | null {
  const reason = match(V4, v4, 'ipv4');
  return reason ? `${kind} ${reason}` : null;
}

/**
 * Why Mailroom must not connect to this address ('loopback', 'private', 'ipv4-mapped loopback'…),
 * or null for a public one. Anything that is not an IP address is refused: fail closed.
 */
export function isForbiddenAddress(ip: string): string | null {
  const family = isIP(ip);
  if (family === 4) return match(V4, ip, 'ipv4');
  if (family !== 6 || ip.includes('%')) return 'invalid'; // a zone id means a link-local interface
  const first = match(V6_FIRST, ip, 'ipv6');
  if (first) return first;
  const kind = match(EMBEDDING, ip, 'ipv6');
  if (kind) {
    const h = hextets(ip);
    return embeddedReason(kind, dotted(h[6], h[7]));
  }
  // 6to4 (2002:AABB:CCDD::/48) routes to the IPv4 host AA.BB.CC.DD through a relay.
  if (match(SIX_TO_FOUR, ip, 'ipv6')) {
    const h = hextets(ip);
    return embeddedReason('6to4', dotted(h[1], h[2]));
  }
  return match(V6, ip, 'ipv6');
}

/** MAILROOM_WEBHOOK_ALLOW, parsed: the operator's exceptions for self-hosted receivers. */
export interface AllowList {
  /** CIDRs and bare IPs. */
  readonly nets: BlockList;
  /** Lower-cased hostnames, without a trailing dot: every address they resolve to is allowed. */
  readonly hosts: ReadonlySet<string>;
}

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/** A DNS name of LDH labels whose last label is not numeric (so "10.1" or "0x7f.1" is no name). */
function isHostname(s: string): boolean {
  const labels = s.split('.');
  return s.length <= 253 && labels.every((l) => LABEL.test(l)) && !/^(\d+|0x[0-9a-f]*)$/.test(labels[labels.length - 1]);
}

const stripDot = (host: string): string => host.replace(/\.$/, '');

function addNet(nets: BlockList, item: string): boolean {
  const slash = item.indexOf('/');
  const addr = (slash < 0 ? item : item.slice(0, slash)).replace(/^\[(.*)\]$/, '$1');
  const family = isIP(addr);
  if (!family) return false;
  const type = family === 4 ? 'ipv4' : 'ipv6';
  if (slash < 0) {
    nets.addAddress(addr, type);
    return true;
  }
  const prefix = item.slice(slash + 1);
  // Digits only: Number('') is 0 and Number('0x8') is 8, and neither is what the operator meant.
  if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > (family === 4 ? 32 : 128)) return false;
  nets.addSubnet(addr, Number(prefix), type);
  return true;
}

/**
 * "127.0.0.1/32, 10.0.0.0/8, fd00::/8, 192.168.1.5, receiver.internal" → an AllowList. Throws on
 * the first item that is neither a CIDR, an IP nor a hostname, naming it, so a typo fails the start
 * instead of silently allowing nothing (or, worse, something else).
 */
export function parseAllowList(value: string | undefined): AllowList {
  const nets = new BlockList();
  const hosts = new Set<string>();
  for (const raw of (value ?? '').split(',')) {
    const item = raw.trim();
    if (!item) continue; // tolerate "a, b," and an empty setting
    if (addNet(nets, item)) continue;
    const host = stripDot(item.toLowerCase());
    if (!item.includes('/') && isHostname(host)) {
      hosts.add(host);
      continue;
    }
    throw new Error(`MAILROOM_WEBHOOK_ALLOW: "${item}" is not a CIDR (like 10.0.0.0/8 or fd00::/8), an IP address or a hostname`);
  }
  return { nets, hosts };
}

export interface WebhookTarget {
  url: URL;
  /** The URL's hostname, without IPv6 brackets: the Host header and TLS name. */
  host: string;
  /** The one address to connect to, judged when this target was resolved. */
  address: string;
  family: 4 | 6;
}

export type Lookup = (host: string) => Promise<{ address: string; family: 4 | 6 }[]>;

const MAX_URL = 2048;

/** Whose URL is judged, for the messages and the refusal. */
export interface TargetKind {
  /** How the messages name the URL: "webhook URL". */
  label: string;
  /** The variable that lets a private range through, and what it is for. */
  allowVar: string;
  allowFor: string;
  /** The error code of a URL that reaches a forbidden address. */
  forbiddenCode: ErrorCode;
}

export const WEBHOOK_TARGET: TargetKind = { label: 'webhook URL', allowVar: 'MAILROOM_WEBHOOK_ALLOW', allowFor: 'self-hosted receivers', forbiddenCode: 'webhook_url_forbidden' };

const invalid = (message: string, cause?: unknown) => new MailroomError('invalid_request', message, { cause });

/** The URL, or an invalid_request saying what is wrong with it. */
function parseTargetUrl(rawUrl: string, label: string): URL {
  if (rawUrl.length > MAX_URL) throw invalid(`${label} is longer than ${MAX_URL} characters`);
  const url = URL.parse(rawUrl);
  if (!url) throw invalid(`${label} is not a valid URL`);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalid(`${label} must be http: or https:, not ${url.protocol}`);
  // Credentials in the URL would be sent to whoever answers and end up in logs; use a header secret.
  if (url.username || url.password) throw invalid(`${label} must not contain a user name or password`);
  return url;
}

/** localhost and *.localhost are loopback by definition (RFC 6761 §6.3), whatever DNS says. */
const isLocalhost = (host: string): boolean => host === 'localhost' || host.endsWith('.localhost');

async function addressesOf(host: string, lookup: Lookup, label: string): Promise<{ address: string; family: 4 | 6 }[]> {
  const family = isIP(host);
  if (family) return [{ address: host, family: family as 4 | 6 }];
  if (isLocalhost(stripDot(host))) return [{ address: '127.0.0.1', family: 4 }];
  const what = label.replace(/ URL$/, '');
  let answers: { address: string; family: 4 | 6 }[];
  try {
    answers = await lookup(host);
  } catch (err) {
    // The cause keeps the DNS code: a delivery worker retries ETIMEOUT/ESERVFAIL, not ENOTFOUND.
    throw invalid(`${what} host ${host} does not resolve (${(err as { code?: string })?.code ?? 'error'})`, err);
  }
  if (!answers.length) throw invalid(`${what} host ${host} does not resolve`);
  return answers;
}

const isAllowed = (address: string, family: 4 | 6, host: string, allow: AllowList): boolean =>
  allow.hosts.has(stripDot(host)) || allow.nets.check(address, family === 4 ? 'ipv4' : 'ipv6');

/**
 * Validate a URL and pin the address to connect to. Called when the URL is given (fail fast) and
 * again before each request (DNS may have changed since): each call resolves afresh, and the
 * returned address is the only one the request may connect to.
 */
export async function resolveTarget(rawUrl: string, opts: { lookup: Lookup; allow: AllowList; kind: TargetKind }): Promise<WebhookTarget> {
  const { label, allowVar, allowFor, forbiddenCode } = opts.kind;
  const url = parseTargetUrl(rawUrl, label);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const answers = await addressesOf(host, opts.lookup, label);
  // ALL answers are judged, not just the one we pick: a name with one public and one private
  // record is an attacker's round-robin, and the resolver's order is theirs to choose.
  for (const { address, family } of answers) {
    const reason = isForbiddenAddress(address);
    if (reason && !isAllowed(address, family, host, opts.allow)) {
      // The origin only: paths and queries of such URLs often carry secrets, and errors get logged.
      throw new MailroomError(forbiddenCode, `${label} ${url.origin} resolves to ${address} (${reason}); set ${allowVar} to allow ${allowFor}`);
    }
  }
  const [{ address, family }] = answers;
  return { url, host, address, family };
}

/** A webhook URL judged and pinned (resolveTarget): at registration and before each delivery attempt. */
export function resolveWebhookTarget(rawUrl: string, opts: { lookup: Lookup; allow: AllowList }): Promise<WebhookTarget> {
  return resolveTarget(rawUrl, { ...opts, kind: WEBHOOK_TARGET });
}

/**
 * A `Lookup` on the process's DNS resolver: A and AAAA together. A family with no records is
 * fine (most hosts have no AAAA); any other failure fails the whole lookup, so the guard never
 * judges (and pins from) half an answer.
 */
export function dnsLookup(resolver: Resolver): Lookup {
  return async (host) => {
    const [v4, v6] = await Promise.allSettled([resolver.resolve4(host), resolver.resolve6(host)]);
    const out: { address: string; family: 4 | 6 }[] = [];
    for (const [result, family] of [[v4, 4], [v6, 6]] as const) {
      if (result.status === 'fulfilled') out.push(...result.value.map((address) => ({ address, family })));
      else if (!isNoData(result.reason)) throw result.reason;
    }
    if (!out.length) throw Object.assign(new Error(`${host} has no A or AAAA records`), { code: 'ENOTFOUND' });
    return out;
  };
}
