import dns2 from 'dns2';

/**
 * A real DNS server on loopback (UDP), serving the test domains' records: foreign domains cannot be
 * resolved here, so Mailroom is pointed at this with MAILROOM_DNS_SERVERS. Names not in the zone
 * answer NXDOMAIN; a known name without the asked type answers NOERROR with no records (NODATA).
 */
export type Rr =
  | { type: 'A'; address: string }
  | { type: 'MX'; exchange: string; priority: number }
  | { type: 'TXT'; value: string };

export interface TestDns {
  /** "127.0.0.1:port", the form MAILROOM_DNS_SERVERS takes. */
  server: string;
  set(name: string, records: Rr[]): void;
  /** Make every query for this name fail with SERVFAIL. */
  fail(name: string): void;
  close(): Promise<void>;
}

const { Packet } = dns2 as any;

/** TXT character-strings are at most 255 octets (RFC 1035 §3.3.14): long values are split. */
const chunks = (s: string) => s.match(/.{1,255}/gs) ?? [''];

export async function startDns(): Promise<TestDns> {
  const zone = new Map<string, Rr[]>();
  const failing = new Set<string>();
  const server = (dns2 as any).createServer({
    udp: true,
    handle(request: any, send: (r: any) => void) {
      const response = Packet.createResponseFromRequest(request);
      const [q] = request.questions;
      const name = String(q.name).toLowerCase().replace(/\.$/, '');
      if (failing.has(name)) {
        response.header.rcode = 2; // SERVFAIL
        return send(response);
      }
      const records = zone.get(name);
      if (!records) {
        response.header.rcode = 3; // NXDOMAIN
        return send(response);
      }
      for (const r of records) {
        const base = { name: q.name, class: Packet.CLASS.IN, ttl: 60 };
        if (r.type === 'A' && q.type === Packet.TYPE.A) response.answers.push({ ...base, type: Packet.TYPE.A, address: r.address });
        if (r.type === 'MX' && q.type === Packet.TYPE.MX) response.answers.push({ ...base, type: Packet.TYPE.MX, exchange: r.exchange, priority: r.priority });
        if (r.type === 'TXT' && q.type === Packet.TYPE.TXT) response.answers.push({ ...base, type: Packet.TYPE.TXT, data: chunks(r.value) });
      }
      send(response);
    },
  });
  server.on('requestError', () => {});
  const addresses = await server.listen({ udp: { port: 0, address: '127.0.0.1' } });
  return {
    server: `127.0.0.1:${addresses.udp.port}`,
    set: (name, records) => zone.set(name.toLowerCase(), records),
    fail: (name) => failing.add(name.toLowerCase()),
    close: async () => { server.close(); },
  };
}
