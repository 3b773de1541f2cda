import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import getTLSOptions from 'smtp-server/lib/tls-options.js';
import { createResolver } from '../src/dns/resolver.ts';
import { MailroomError } from '../src/errors.ts';
import { postPinned } from '../src/webhooks/http.ts';
import { dnsLookup, isForbiddenAddress, parseAllowList, resolveWebhookTarget, type Lookup, type WebhookTarget } from '../src/webhooks/ssrf.ts';
import { startDns, type TestDns } from './helpers/dns.ts';

/**
 * The webhook SSRF guard (test plan §4: A5 SSRF at registration, A6 DNS rebinding, A7 redirects)
 * and the pinned POST that delivers. Real parts only: names are served by a DNS server on loopback,
 * receivers are node:http servers on 127.0.0.0/8.
 */

interface Receiver {
  port: number;
  /** Requests that reached the handler, with their body. */
  requests: { method: string; url: string; headers: http.IncomingHttpHeaders; body: string }[];
  /** TCP connections accepted, whether or not a request followed. */
  connections: number;
  close(): Promise<void>;
}

/** A real HTTP server; `respond` decides the answer (default 204), or never answers if it writes nothing. */
async function receiver(respond: (req: http.IncomingMessage, res: http.ServerResponse) => void = (_q, s) => s.writeHead(204).end(), host = '127.0.0.1', port = 0): Promise<Receiver> {
  const r = { requests: [], connections: 0 } as unknown as Receiver;
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c);
    r.requests.push({ method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString() });
    respond(req, res);
  });
  server.on('connection', () => r.connections++);
  await new Promise<void>((ok) => server.listen(port, host, ok));
  r.port = (server.address() as AddressInfo).port;
  r.close = async () => {
    server.closeAllConnections();
    await new Promise((ok) => server.close(ok));
  };
  return r;
}

/** A target as `resolveWebhookTarget` would build it: `name` in the URL, `address` pinned. */
const pinned = (url: string, address = '127.0.0.1'): WebhookTarget => {
  const u = new URL(url);
  return { url: u, host: u.hostname, address, family: 4 };
};

const NO_ALLOW = parseAllowList(undefined);

/** Asserts a MailroomError with this code whose message contains every fragment. */
async function refuses(p: Promise<unknown>, code: string, ...fragments: string[]): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof MailroomError, `expected a MailroomError, got ${err}`);
    assert.equal(err.code, code, err.message);
    for (const f of fragments) assert.ok(err.message.includes(f), `"${err.message}" should mention ${f}`);
    return true;
  });
}

describe('webhook SSRF guard', () => {
  let dns: TestDns;
  let lookup: Lookup;
  const resolve = (url: string, allow = NO_ALLOW) => resolveWebhookTarget(url, { lookup, allow });

  before(async () => {
    dns = await startDns();
    lookup = dnsLookup(createResolver([dns.server]));
    dns.set('public.example.test', [{ type: 'A', address: '93.184.216.34' }]);
    dns.set('loopback.example.test', [{ type: 'A', address: '127.0.0.1' }]);
    // Public first: the guard must judge every answer, not just the first one.
    dns.set('mixed.example.test', [{ type: 'A', address: '93.184.216.34' }, { type: 'A', address: '10.0.0.7' }]);
    dns.set('receiver.internal', [{ type: 'A', address: '10.0.0.5' }]);
    dns.set('broken.example.test', []);
    dns.fail('servfail.example.test');
  });
  after(() => dns.close());

  test('A5 SSRF: isForbiddenAddress names the special-purpose range of an address', () => {
    const cases: [string, string | null][] = [
      ['0.0.0.0', 'unspecified'], ['10.1.2.3', 'private'], ['100.64.0.1', 'cgnat'], ['100.127.255.255', 'cgnat'],
      ['127.0.0.1', 'loopback'], ['127.255.0.9', 'loopback'], ['169.254.169.254', 'link-local'],
      ['172.16.0.1', 'private'], ['172.31.255.255', 'private'], ['192.0.0.8', 'reserved'], ['192.0.2.1', 'documentation'],
      ['192.168.1.1', 'private'], ['198.18.0.1', 'benchmarking'], ['198.19.255.255', 'benchmarking'],
      ['198.51.100.1', 'documentation'], ['203.0.113.1', 'documentation'], ['224.0.0.1', 'multicast'],
      ['239.255.255.250', 'multicast'], ['240.0.0.1', 'reserved'], ['255.255.255.255', 'reserved'],
      ['::', 'unspecified'], ['::1', 'loopback'], ['fc00::1', 'private'], ['fd00::1', 'private'], ['fe80::1', 'link-local'],
      ['ff02::1', 'multicast'], ['2001:db8::1', 'documentation'], ['100::1', 'reserved'],
      ['::ffff:127.0.0.1', 'ipv4-mapped loopback'], ['::ffff:7f00:1', 'ipv4-mapped loopback'],
      ['::ffff:169.254.169.254', 'ipv4-mapped link-local'], ['64:ff9b::a9fe:a9fe', 'nat64 link-local'],
      ['64:ff9b::10.0.0.1', 'nat64 private'], ['::7f00:1', 'ipv4-compatible loopback'], ['::ffff:0:a00:1', 'ipv4-translated private'],
      ['2002:7f00:1::', '6to4 loopback'], ['fe80::1%eth0', 'invalid'], ['example.com', 'invalid'], ['', 'invalid'],
      // public
      ['93.184.216.34', null], ['8.8.8.8', null], ['172.32.0.1', null], ['100.128.0.1', null], ['198.20.0.1', null],
      ['2606:4700:4700::1111', null], ['::ffff:93.184.216.34', null], ['64:ff9b::808:808', null],
    ];
    for (const [ip, reason] of cases) assert.equal(isForbiddenAddress(ip), reason, ip);
  });

  test('A5 SSRF: URLs that reach loopback, private, link-local, metadata and mapped addresses are refused', async () => {
    const cases: [string, string, string][] = [
      ['http://127.0.0.1/', '127.0.0.1', 'loopback'],
      ['http://[::1]/', '::1', 'loopback'],
      ['http://169.254.169.254/latest/meta-data', '169.254.169.254', 'link-local'],
      // The WHATWG parser turns these spellings into 127.0.0.1, and the guard judges what it made.
      ['http://2130706433/', '127.0.0.1', 'loopback'],
      ['http://0x7f.1/', '127.0.0.1', 'loopback'],
      ['http://017700000001/', '127.0.0.1', 'loopback'],
      ['http://10.1.2.3/', '10.1.2.3', 'private'],
      ['http://100.64.0.1/', '100.64.0.1', 'cgnat'],
      ['http://[fd00::1]/', 'fd00::1', 'private'],
      ['http://[::ffff:127.0.0.1]/', '::ffff:7f00:1', 'ipv4-mapped loopback'],
      ['http://[::ffff:7f00:1]/', '::ffff:7f00:1', 'ipv4-mapped loopback'],
      ['http://[64:ff9b::a9fe:a9fe]/', '64:ff9b::a9fe:a9fe', 'nat64 link-local'],
      ['http://0.0.0.0/', '0.0.0.0', 'unspecified'],
      ['https://255.255.255.255:8443/', '255.255.255.255', 'reserved'],
    ];
    for (const [url, address, reason] of cases) {
      await refuses(resolve(url), 'webhook_url_forbidden', `resolves to ${address} (${reason})`, 'MAILROOM_WEBHOOK_ALLOW');
    }
    const err = await resolve('http://127.0.0.1/').catch((e) => e);
    assert.equal(err.status, 400);
  });

  test('A5 SSRF: the refusal names the origin but not the path or query, which may hold secrets', async () => {
    await refuses(resolve('http://127.0.0.1:8080/hooks/s3cr3t?token=abc'), 'webhook_url_forbidden', 'http://127.0.0.1:8080 resolves');
    const err = await resolve('http://127.0.0.1:8080/hooks/s3cr3t?token=abc').catch((e) => e);
    assert.ok(!err.message.includes('s3cr3t') && !err.message.includes('token'), err.message);
  });

  test('A5 SSRF: other schemes, credentials, over-long and malformed URLs are invalid requests', async () => {
    await refuses(resolve('ftp://example.com/'), 'invalid_request', 'ftp:');
    await refuses(resolve('file:///etc/passwd'), 'invalid_request', 'file:');
    await refuses(resolve('gopher://127.0.0.1:6379/_INFO'), 'invalid_request', 'gopher:');
    await refuses(resolve('http://user:pw@example.com/'), 'invalid_request', 'user name or password');
    await refuses(resolve('http://user@example.com/'), 'invalid_request', 'user name or password');
    await refuses(resolve(`https://public.example.test/${'a'.repeat(2048)}`), 'invalid_request', '2048');
    await refuses(resolve('not a url'), 'invalid_request', 'not a valid URL');
    const err = await resolve('ftp://example.com/').catch((e) => e);
    assert.equal(err.status, 400);
  });

  test('A5 SSRF: a name served as 127.0.0.1 is refused', async () => {
    await refuses(resolve('https://loopback.example.test/hook'), 'webhook_url_forbidden', 'https://loopback.example.test resolves to 127.0.0.1 (loopback)');
  });

  test('A5 SSRF: a name with one public and one private A record is refused', async () => {
    await refuses(resolve('https://mixed.example.test/hook'), 'webhook_url_forbidden', 'resolves to 10.0.0.7 (private)');
  });

  test('A5 SSRF: localhost and *.localhost are loopback whatever DNS says', async () => {
    await refuses(resolve('http://localhost:3000/'), 'webhook_url_forbidden', '127.0.0.1 (loopback)');
    await refuses(resolve('http://a.localhost/'), 'webhook_url_forbidden', '127.0.0.1 (loopback)');
    await refuses(resolve('http://LOCALHOST./'), 'webhook_url_forbidden', '127.0.0.1 (loopback)');
  });

  test('A5 SSRF: a name that does not resolve is an invalid request naming it', async () => {
    await refuses(resolve('https://nowhere.example.test/'), 'invalid_request', 'nowhere.example.test', 'ENOTFOUND');
    await refuses(resolve('https://broken.example.test/'), 'invalid_request', 'broken.example.test');
    const err = await resolve('https://servfail.example.test/').catch((e) => e);
    assert.equal(err.code, 'invalid_request');
    assert.match(err.message, /servfail\.example\.test/);
    assert.equal(err.cause.code, 'ESERVFAIL', 'the DNS code stays available for a retry decision');
  });

  test('A5 SSRF: a name served as a public address is accepted and that address pinned', async () => {
    const t = await resolve('https://public.example.test/hooks/mailroom?x=1');
    assert.equal(t.address, '93.184.216.34');
    assert.equal(t.family, 4);
    assert.equal(t.host, 'public.example.test');
    assert.equal(t.url.href, 'https://public.example.test/hooks/mailroom?x=1');
    const literal = await resolve('http://[2606:4700:4700::1111]:8080/');
    assert.deepEqual([literal.host, literal.address, literal.family], ['2606:4700:4700::1111', '2606:4700:4700::1111', 6]);
  });

  test('A5 SSRF: MAILROOM_WEBHOOK_ALLOW=127.0.0.1/32 lets a self-hosted receiver on loopback through', async () => {
    const allow = parseAllowList('127.0.0.1/32');
    const t = await resolve('http://127.0.0.1:8787/hook', allow);
    assert.equal(t.address, '127.0.0.1');
    assert.equal((await resolve('http://localhost:8787/hook', allow)).address, '127.0.0.1');
    // Only what is listed: the rest of 127/8, and private ranges, stay refused.
    await refuses(resolve('http://127.0.0.2:8787/', allow), 'webhook_url_forbidden', '127.0.0.2 (loopback)');
    await refuses(resolve('http://10.1.2.3/', allow), 'webhook_url_forbidden', '10.1.2.3 (private)');
    const v6 = parseAllowList('fd00::/8');
    assert.equal((await resolve('http://[fd12::5]/', v6)).address, 'fd12::5');
  });

  test('A5 SSRF: a hostname allow-list entry allows what that name resolves to, and only for that name', async () => {
    const allow = parseAllowList('Receiver.Internal');
    const t = await resolve('http://RECEIVER.internal:9000/hook', allow);
    assert.equal(t.address, '10.0.0.5');
    await refuses(resolve('http://10.0.0.5:9000/hook', allow), 'webhook_url_forbidden', '10.0.0.5 (private)');
    await refuses(resolve('http://loopback.example.test/', allow), 'webhook_url_forbidden', '127.0.0.1 (loopback)');
  });

  test('parseAllowList accepts CIDRs, IPs and hostnames and refuses garbage, naming the item', () => {
    const allow = parseAllowList(' 127.0.0.1/32, 10.0.0.0/8,fd00::/8, 192.168.1.10, [::1], receiver.internal, ');
    assert.ok(allow.nets.check('10.200.0.1', 'ipv4'));
    assert.ok(allow.nets.check('192.168.1.10', 'ipv4'));
    assert.ok(!allow.nets.check('192.168.1.11', 'ipv4'));
    assert.ok(allow.nets.check('fd12:3456::1', 'ipv6'));
    assert.ok(allow.nets.check('::1', 'ipv6'));
    assert.deepEqual([...allow.hosts], ['receiver.internal']);
    assert.deepEqual([...parseAllowList('').hosts], []);
    for (const bad of ['10.0.0.0/99', 'fd00::/129', '300.1.1.1/8', '10.0.0.0/', '10.0.0.0/0x8', 'not a host!', '-bad.example', '0x7f.1', 'http://x.test/']) {
      assert.throws(() => parseAllowList(`127.0.0.1/32,${bad}`), (err: Error) => {
        assert.ok(!(err instanceof MailroomError), 'config errors are plain Errors');
        assert.ok(err.message.includes(`"${bad}"`), err.message);
        return true;
      }, bad);
    }
  });

  test('dnsLookup: A answers with NODATA for AAAA, NXDOMAIN as ENOTFOUND, SERVFAIL as a failure', async () => {
    assert.deepEqual(await lookup('mixed.example.test'), [{ address: '93.184.216.34', family: 4 }, { address: '10.0.0.7', family: 4 }]);
    await assert.rejects(lookup('nowhere.example.test'), { code: 'ENOTFOUND' });
    await assert.rejects(lookup('broken.example.test'), { code: 'ENOTFOUND' });
    await assert.rejects(lookup('servfail.example.test'), { code: 'ESERVFAIL' });
  });

  test('A6 DNS rebinding: a name re-pointed from a public address to 127.0.0.1 is refused on the next resolve', async () => {
    dns.set('rebind.example.test', [{ type: 'A', address: '93.184.216.34' }]);
    assert.equal((await resolve('https://rebind.example.test/hook')).address, '93.184.216.34');
    dns.set('rebind.example.test', [{ type: 'A', address: '127.0.0.1' }]);
    await refuses(resolve('https://rebind.example.test/hook'), 'webhook_url_forbidden', 'resolves to 127.0.0.1 (loopback)');
  });

  test('A6 DNS rebinding: postPinned connects to the pinned address, never to what the name resolves to now', async () => {
    const good = await receiver();
    const canary = await receiver(undefined, '127.0.0.2', good.port); // same port, another loopback address
    try {
      dns.set('pin.example.test', [{ type: 'A', address: '127.0.0.1' }]);
      const target = await resolve(`http://pin.example.test:${good.port}/hook`, parseAllowList('127.0.0.1/32'));
      dns.set('pin.example.test', [{ type: 'A', address: '127.0.0.2' }]);
      const r = await postPinned(target, { headers: {}, body: '{}', timeoutMs: 5000 });
      assert.equal(r.status, 204);
      assert.equal(good.requests.length, 1);
      assert.equal(canary.connections, 0, 'the canary must see no connection at all');
    } finally {
      await good.close();
      await canary.close();
    }
  });
});

describe('postPinned', () => {
  test('the request carries the URL name in Host, and the body and headers intact', async () => {
    const r = await receiver((_q, s) => s.writeHead(200, { 'content-type': 'text/plain' }).end('ok'));
    try {
      const body = JSON.stringify({ type: 'message.received', data: { id: 'msg_1', subject: 'héllo' } });
      const res = await postPinned(pinned(`http://hooks.example.test:${r.port}/hooks/in?tenant=a#frag`), {
        headers: { 'webhook-id': 'msg_1', 'Webhook-Signature': 'v1,abc=', 'Content-Type': 'application/json; charset=utf-8' },
        body,
        timeoutMs: 5000,
      });
      assert.equal(res.status, 200);
      assert.ok(res.durationMs >= 0 && res.durationMs < 5000);
      assert.equal(r.requests.length, 1);
      const [got] = r.requests;
      assert.equal(got.method, 'POST');
      assert.equal(got.url, '/hooks/in?tenant=a', 'path and query sent, fragment not');
      assert.equal(got.headers.host, `hooks.example.test:${r.port}`);
      assert.equal(got.body, body);
      assert.equal(got.headers['content-length'], String(Buffer.byteLength(body)));
      assert.equal(got.headers['webhook-id'], 'msg_1');
      assert.equal(got.headers['webhook-signature'], 'v1,abc=');
      assert.equal(got.headers['content-type'], 'application/json; charset=utf-8', 'the caller overrides the default');
      assert.equal(got.headers['user-agent'], 'Mailroom-Webhooks/1');
      assert.equal(got.headers.connection, 'close', 'no keep-alive');
      assert.deepEqual(Object.keys(res).sort(), ['durationMs', 'status'], 'the response body is never returned');
    } finally {
      await r.close();
    }
  });

  test('defaults: content-type application/json and the Mailroom user agent', async () => {
    const r = await receiver();
    try {
      const res = await postPinned(pinned(`http://hooks.example.test:${r.port}/`), { headers: {}, body: '{"a":1}', timeoutMs: 5000 });
      assert.equal(res.status, 204);
      assert.equal(r.requests[0].headers['content-type'], 'application/json');
      assert.equal(r.requests[0].headers['user-agent'], 'Mailroom-Webhooks/1');
    } finally {
      await r.close();
    }
  });

  test('A7 redirects: a 302 is returned as status 302 and its Location is never requested', async () => {
    const other = await receiver();
    const r = await receiver((_q, s) => s.writeHead(302, { location: `http://127.0.0.1:${other.port}/latest/meta-data` }).end('moved'));
    try {
      const res = await postPinned(pinned(`http://hooks.example.test:${r.port}/hook`), { headers: {}, body: '{}', timeoutMs: 5000 });
      assert.equal(res.status, 302);
      await new Promise((ok) => setTimeout(ok, 100)); // give a (wrong) follow-up request time to land
      assert.equal(other.connections, 0);
      assert.equal(r.requests.length, 1);
    } finally {
      await r.close();
      await other.close();
    }
  });

  test('a receiver that never answers rejects with ETIMEDOUT after about timeoutMs', async () => {
    const r = await receiver(() => {}); // reads the request, never writes a response
    try {
      const started = performance.now();
      await assert.rejects(postPinned(pinned(`http://hooks.example.test:${r.port}/`), { headers: {}, body: '{}', timeoutMs: 300 }), (err: any) => {
        assert.equal(err.code, 'ETIMEDOUT');
        assert.match(err.message, /timed out after 300 ms/);
        return true;
      });
      const elapsed = performance.now() - started;
      assert.ok(elapsed >= 250 && elapsed < 2000, `took ${elapsed} ms`);
    } finally {
      await r.close();
    }
  });

  test('a 10 MB response body is not read: the call returns promptly and hangs up', async () => {
    const TOTAL = 10 * 1024 * 1024;
    let written = 0;
    let finished = false;
    const serverDone = Promise.withResolvers<void>();
    const r = await receiver((_q, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': TOTAL });
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      const pump = () => {
        // Honour backpressure so `written` counts what the client side actually let through.
        while (written < TOTAL && !res.destroyed) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        if (written >= TOTAL) res.end();
      };
      res.on('finish', () => { finished = true; });
      res.on('close', () => serverDone.resolve());
      res.on('error', () => {});
      pump();
    });
    try {
      const started = performance.now();
      const res = await postPinned(pinned(`http://hooks.example.test:${r.port}/`), { headers: {}, body: '{}', timeoutMs: 10_000 });
      const elapsed = performance.now() - started;
      assert.equal(res.status, 200);
      assert.ok(elapsed < 2000, `took ${elapsed} ms`);
      await serverDone.promise;
      assert.equal(finished, false, `the client hung up before the body ended (server wrote ${written} bytes)`);
    } finally {
      await r.close();
    }
  });

  test('https: the URL name goes as SNI and the certificate is verified against it', async () => {
    const seen: string[] = [];
    const server = https.createServer({
      ...getTLSOptions(),
      SNICallback: (name, cb) => { seen.push(name); cb(null); },
    }, (_q, s) => s.writeHead(204).end());
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    const { port } = server.address() as AddressInfo;
    try {
      // smtp-server's bundled "localhost" certificate (self-signed, expired by now): a verifying
      // client must refuse it, whichever check it fails first.
      await assert.rejects(postPinned(pinned(`https://hooks.example.test:${port}/`), { headers: {}, body: '{}', timeoutMs: 5000 }), (err: any) => {
        assert.match(err.code, /CERT|SELF_SIGNED|UNABLE_TO_VERIFY/);
        return true;
      });
      assert.deepEqual(seen, ['hooks.example.test']);
    } finally {
      server.closeAllConnections();
      await new Promise((ok) => server.close(ok));
    }
  });
});
