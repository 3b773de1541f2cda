import { promises as dns } from 'node:dns';

/**
 * The one DNS resolver of the process, pointed at MAILROOM_DNS_SERVERS when set ("host" or
 * "host:port", as `dns.setServers` takes them) so tests can serve foreign domains from a DNS server
 * on loopback. Short timeouts: a slow lookup defers a send, it must not hold a worker for minutes.
 */
export type Resolver = InstanceType<typeof dns.Resolver>;

export function createResolver(servers: string[]): Resolver {
  const r = new dns.Resolver({ timeout: 3000, tries: 2 });
  if (servers.length) r.setServers(servers);
  return r;
}

/** DNS answers that mean "this name does not exist / has no such record", as opposed to a failure. */
export const isNoData = (err: unknown): boolean => ['ENOTFOUND', 'ENODATA', 'ENONAME'].includes((err as { code?: string })?.code ?? '');
