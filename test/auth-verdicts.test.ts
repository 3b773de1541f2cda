import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { dkimSign } from 'mailauth/lib/dkim/sign.js';
import { cachingResolve, createResolver } from '../src/dns/resolver.ts';
import { authVerdict, mailauthInput } from '../src/intel/auth.ts';
import { parseMessage } from '../src/mime/parse.ts';
import { ENGINES, skipEngine, startTestMailroom, waitFor, type TestMailroom } from './helpers/mailroom.ts';
import { startDns, type TestDns } from './helpers/dns.ts';
import { SmtpClient } from './helpers/smtp.ts';

/**
 * security.auth (issue 4, item 1; test plan S19, S20, S22): SPF, DKIM, DMARC and ARC computed by
 * mailauth after the `250`, against a real DNS server on loopback serving the test domains' TXT
 * records. The SMTP client is 127.0.0.1, which the SPF records below authorise.
 */
function key() {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
  return { privateKey, txt: `v=DKIM1; k=rsa; p=${publicKey.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '')}` };
}

const mail = (from: string, subject: string, extra: string[] = []) =>
  Buffer.from([`From: ${from}`, 'To: agent@mailroom.test', `Subject: ${subject}`, `Message-ID: <${subject.replace(/\W/g, '')}.${Date.now()}@example.com>`, 'Date: Wed, 25 Nov 2026 10:00:00 +0000', ...extra, '', 'Please find the quarterly numbers below.', ''].join('\r\n'));

async function sign(raw: Buffer, domain: string, selector: string, privateKey: string): Promise<Buffer> {
  const r = await dkimSign(raw, { signatureData: [{ signingDomain: domain, selector, privateKey }] } as never);
  return Buffer.concat([Buffer.from(r.signatures), raw]);
}

for (const engine of ENGINES) {
  describe(`${engine}: authentication verdicts (security.auth)`, { skip: await skipEngine(engine) }, () => {
    let m: TestMailroom;
    let dns: TestDns;
    const k1 = key();
    const k2 = key();
    before(async () => {
      dns = await startDns();
      dns.set('example.com', [{ type: 'TXT', value: 'v=spf1 ip4:127.0.0.1 -all' }]);
      dns.set('s1._domainkey.example.com', [{ type: 'TXT', value: k1.txt }]);
      dns.set('_dmarc.example.com', [{ type: 'TXT', value: 'v=DMARC1; p=reject' }]);
      dns.set('other.example', [{ type: 'TXT', value: 'v=spf1 ip4:127.0.0.1 -all' }]);
      dns.set('s2._domainkey.other.example', [{ type: 'TXT', value: k2.txt }]);
      for (const n of ['down.example', 's1._domainkey.down.example', '_dmarc.down.example']) dns.fail(n);
      m = await startTestMailroom(engine, { MAILROOM_DNS_SERVERS: dns.server });
      await m.api('POST', '/v1/inboxes', { username: 'agent' });
    });
    after(async () => {
      await m?.destroy();
      await dns?.close();
    });

    /** Sends over SMTP and returns the stored message's security.auth. */
    async function receive(mailFrom: string, data: Buffer): Promise<any> {
      const c = await SmtpClient.connect(m.smtpPort);
      await c.cmd('EHLO mail.example.com');
      const r = await c.send(mailFrom, ['agent@mailroom.test'], data);
      assert.equal(r.data?.code, 250, r.data?.text);
      await c.quit();
      const id = /queued as (rcv_\w+)/.exec(r.data!.text)![1];
      const row = await waitFor(async () => m.store.db.selectFrom('messages').innerJoin('deliveries', 'deliveries.id', 'messages.id').select('messages.id').where('deliveries.receipt_id', '=', id).executeTakeFirst(), 20_000, 'the message');
      const msg = (await m.api('GET', `/v1/messages/${row.id}`)).body;
      assert.ok(msg.security?.auth, JSON.stringify(msg.security));
      return msg.security.auth;
    }

    test('S20 signed by the From domain, SPF authorised: dkim=pass (aligned), spf=pass, dmarc=pass with policy reject', async () => {
      const a = await receive('news@example.com', await sign(mail('News <news@example.com>', 'aligned'), 'example.com', 's1', k1.privateKey));
      assert.equal(a.authserv_id, 'mx.mailroom.test');
      assert.deepEqual(a.dkim.map((d: any) => [d.result, d.domain, d.selector, d.aligned]), [['pass', 'example.com', 's1', true]]);
      assert.deepEqual(a.spf, { result: 'pass', domain: 'example.com' });
      assert.equal(a.dmarc.result, 'pass');
      assert.equal(a.dmarc.policy, 'reject');
      assert.deepEqual(a.dmarc.alignment, { spf: true, dkim: true });
      assert.deepEqual(a.signals, []);
    });

    test('S20 one body byte changed after signing: dkim=fail', async () => {
      const signed = await sign(mail('News <news@example.com>', 'tampered'), 'example.com', 's1', k1.privateKey);
      const tampered = Buffer.from(signed.toString('latin1').replace('quarterly numbers', 'quarterly numberz'), 'latin1');
      const a = await receive('news@example.com', tampered);
      assert.equal(a.dkim[0].result, 'fail');
    });

    test('S20 DMARC p=reject, neither SPF nor DKIM aligned with From: dmarc=fail; the mismatch is a signal', async () => {
      const raw = await sign(mail('CEO <ceo@example.com>', 'unaligned'), 'other.example', 's2', k2.privateKey);
      const a = await receive('bulk@other.example', raw);
      assert.equal(a.spf.result, 'pass', 'SPF passes for the envelope domain…');
      assert.deepEqual(a.dkim.map((d: any) => [d.result, d.aligned]), [['pass', false]], '…and DKIM for the signing domain…');
      assert.equal(a.dmarc.result, 'fail', '…but neither is the From domain');
      assert.equal(a.dmarc.policy, 'reject');
      assert.ok(a.signals.some((s: any) => s.kind === 'envelope_from_mismatch'));
    });

    test('S20 DNS down (SERVFAIL): temperror, never pass', async () => {
      const a = await receive('ops@down.example', await sign(mail('Ops <ops@down.example>', 'dns down'), 'down.example', 's1', k1.privateKey));
      assert.equal(a.spf.result, 'temperror');
      assert.equal(a.dkim[0].result, 'temperror');
      assert.equal(a.dmarc.result, 'temperror');
    });

    test('S22 an Authentication-Results header claiming our authserv-id is ignored: the verdict is our own', async () => {
      const forged = await sign(mail('CEO <ceo@example.com>', 'forged ar', ['Authentication-Results: mx.mailroom.test; dkim=pass header.d=example.com; spf=pass; dmarc=pass']), 'other.example', 's2', k2.privateKey);
      const a = await receive('bulk@other.example', forged);
      assert.equal(a.dmarc.result, 'fail');
    });

    test('S19 display-name spoofing and multiple From fields are reported as signals', async () => {
      const spoof = await receive('a@other.example', mail('"ceo@mailroom.test" <a@other.example>', 'display name'));
      assert.deepEqual(spoof.signals.map((s: any) => s.kind), ['display_name_has_address']);
      assert.match(spoof.signals[0].evidence, /ceo@mailroom\.test/);
      const two = await receive('a@example.com', mail('a@example.com', 'two from', ['From: b@other.example']));
      assert.ok(two.signals.some((s: any) => s.kind === 'multiple_from'));
      assert.notEqual(two.dmarc.result, 'pass', 'two From fields never pass DMARC');
      // S18: pаypal.com with a Cyrillic а (xn--pypal-4ve.com) imitates paypal.com; rn for m imitates microsoft.com;
      // an IDN that imitates nothing is still reported as IDN.
      const idn = await receive('service@xn--pypal-4ve.com', mail('PayPal <service@xn--pypal-4ve.com>', 'idn'));
      const look = idn.signals.find((s: any) => s.kind === 'lookalike_domain');
      assert.ok(look, JSON.stringify(idn.signals));
      assert.match(look.evidence, /pаypal\.com \(xn--pypal-4ve\.com\) looks like paypal\.com, mixed scripts/);
      const rn = await receive('it@rnicrosoft.com', mail('IT <it@rnicrosoft.com>', 'rn'));
      assert.ok(rn.signals.some((s: any) => s.kind === 'lookalike_domain' && /looks like microsoft\.com/.test(s.evidence)));
      const own = await receive('x@mai1room.test', mail('Ops <x@mai1room.test>', 'own'));
      assert.ok(own.signals.some((s: any) => s.kind === 'lookalike_domain' && /looks like mailroom\.test/.test(s.evidence)), 'imitating our own domain');
      const plainIdn = await receive('info@xn--mnchen-3ya.example', mail('Info <info@xn--mnchen-3ya.example>', 'munich'));
      assert.ok(plainIdn.signals.some((s: any) => s.kind === 'idn_sender_domain' && /münchen\.example/.test(s.evidence)));
      assert.ok(!plainIdn.signals.some((s: any) => s.kind === 'lookalike_domain'));
    });
  });
}

describe('mailauth reads the header section alone when no signature asks for the body', () => {
  let dns: TestDns;
  let resolve: (name: string, rrtype: string) => Promise<unknown>;
  const k = key();
  before(async () => {
    dns = await startDns();
    dns.set('example.com', [{ type: 'TXT', value: 'v=spf1 ip4:127.0.0.1 -all' }]);
    dns.set('s1._domainkey.example.com', [{ type: 'TXT', value: k.txt }]);
    dns.set('_dmarc.example.com', [{ type: 'TXT', value: 'v=DMARC1; p=reject' }]);
    resolve = cachingResolve(createResolver([dns.server]));
  });
  after(async () => { await dns?.close(); });

  test('mailauthInput: the header section up to its empty line (CRLF or LF); the whole message when a DKIM or ARC field is in it, or there is no body', () => {
    const crlf = Buffer.from('From: a@example.com\r\nSubject: x\r\n\r\nbody\r\nDKIM-Signature: in the body\r\n');
    assert.equal(mailauthInput(crlf).toString(), 'From: a@example.com\r\nSubject: x\r\n\r\n');
    const lf = Buffer.from('From: a@example.com\nSubject: x\n\nbody\n');
    assert.equal(mailauthInput(lf).toString(), 'From: a@example.com\nSubject: x\n\n');
    assert.equal(mailauthInput(Buffer.from('\r\nbody')).toString(), '\r\n');
    const noBody = Buffer.from('From: a@example.com\r\nSubject: x\r\n');
    assert.equal(mailauthInput(noBody), noBody);
    for (const field of ['DKIM-Signature: v=1', 'dkim-signature:v=1', 'ARC-Seal: i=1', 'Arc-Message-Signature: i=1']) {
      const raw = Buffer.from(`From: a@example.com\r\n${field}\r\n\r\nbody\r\n`);
      assert.equal(mailauthInput(raw), raw, field);
    }
  });

  test('the verdicts are the same as from the whole message: every corpus message, signed, altered and unsigned mail', async () => {
    const env = { ip: '127.0.0.1', helo: 'mail.example.com', mailFrom: 'alice@example.com' };
    const signed = await sign(mail('Alice <alice@example.com>', 'signed'), 'example.com', 's1', k.privateKey);
    const samples: Buffer[] = [mail('Alice <alice@example.com>', 'unsigned'), signed, Buffer.from(signed.toString().replace('quarterly', 'yearly'))];
    const corpora = path.resolve('../shared/corpora');
    if (existsSync(corpora)) {
      for (const f of readdirSync(corpora, { recursive: true, withFileTypes: true })) {
        if (f.isFile() && f.name.endsWith('.eml')) samples.push(readFileSync(path.join(f.parentPath, f.name)));
      }
    }
    let shortened = 0;
    for (const raw of samples) {
      const p = await parseMessage(raw);
      const opts = { authservId: 'mx.mailroom.test', resolve };
      const whole = await authVerdict(raw, env, p, { ...opts, wholeMessage: true });
      const head = await authVerdict(raw, env, p, opts);
      assert.deepEqual(head, whole, raw.subarray(0, 200).toString());
      if (mailauthInput(raw).length < raw.length) shortened++;
    }
    assert.equal((await authVerdict(signed, env, await parseMessage(signed), { authservId: 'mx', resolve })).dkim[0].result, 'pass');
    if (existsSync(corpora)) assert.ok(shortened > 300, `only ${shortened} of ${samples.length} messages took the header-only path`);
  });
});
