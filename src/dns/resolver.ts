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

/**
 * `resolve(name, rrtype)` for mailauth, with a small cache: one message triggers several lookups
 * of the same names (SPF, DKIM key, DMARC), and a burst from one sender repeats them. Failures are
 * cached briefly too, so an unreachable DNS server costs one timeout per name, not one per message.
 */
export function cachingResolve(r: Resolver, ttlMs = 300_000, errorTtlMs = 30_000, max = 10_000): (name: string, rrtype: string) => Promise<unknown> {
  const cache = new Map<string, { until: number; value?: unknown; error?: unknown }>();
  return async (name, rrtype) => {
    const key = `${rrtype} ${name.toLowerCase()}`;
    const hit = cache.get(key);
    if (hit && hit.until > Date.now()) {
      if (hit.error) throw hit.error;
      return hit.value;
    }
    if (cache.size >= max) cache.clear();
    try {
      const value = await r.resolve(name, rrtype as never);
      cache.set(key, { until: Date.now() + ttlMs, value });
      return value;
    } catch (error) {
      cache.set(key, { until: Date.now() + errorTtlMs, error });
      throw error;
    }
  };
}
