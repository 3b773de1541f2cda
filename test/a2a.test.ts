import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Client, StreamableHTTPClientTransport, type CallToolResult } from '@modelcontextprotocol/client';
import { dkimSign } from 'mailauth/lib/dkim/sign.js';
import MailComposer from 'nodemailer/lib/mail-composer';
import { A2aTimeoutError, Mailroom, MailroomApiError, type A2aReceived } from '../packages/sdk/src/index.ts';
import {
  A2A_FILENAME, a2aTrust, decodeA2a, encodeA2a, findA2a, MAX_DEPTH, MAX_PART_BYTES, MAX_PAYLOAD_BYTES, type A2aEnvelope,
} from '../src/a2a/format.ts';
import { compose } from '../src/outbound/compose.ts';
import { parseMessage } from '../src/mime/parse.ts';
import { startDns, type TestDns } from './helpers/dns.ts';
import { ENGINES, skipEngine, startTestMailroom, waitFor, type TestMailroom } from './helpers/mailroom.ts';
import { SmtpClient } from './helpers/smtp.ts';

/**
 * Agent-to-agent email (issue 7, part 3; docs/a2a.md). The format on its own (compose → parse with
 * the real MailComposer and mailparser, malformed and oversized parts, the trust rule), then two
 * Mailroom servers on two domains, a.test and b.test, each delivering to the other by MX looked up
 * on a DNS server on loopback that also publishes both domains' SPF, DKIM keys and DMARC records.
 * An agent on B, a loop on the SDK, answers requests; A's SDK `request()` resolves with its answer.
 * Forged a2a mail (straight to an SMTP port, claiming a.test or b.test without a valid signature)
 * is stored but never counts: not for B's agent, not for A's waiting request.
 */

const env = (over: Partial<A2aEnvelope> = {}): Omit<A2aEnvelope, 'mailroom_a2a'> =>
  ({ type: 'request', intent: 'math.add', payload: { a: 2, b: 40 }, correlation_id: 'a2a_test_0001', ...over });
const jsonPart = (content: Buffer | string, filename: string | null = A2A_FILENAME) => ({ filename, content_type: 'application/json', content: Buffer.from(content) });

describe('a2a format', () => {
  test('round trip: an envelope composed by MailComposer (text + JSON part, multipart/mixed) is found intact by mailparser', async () => {
    const json = encodeA2a(env({ payload: { text: 'grüße ✓', list: [1, null, true], nested: { deep: 'x' } }, reply_expected_by: '2026-12-01T12:00:00+01:00' }));
    const composed = await compose(
      { to: ['b@b.test'], subject: '[a2a] math.add', text: 'human part', attachments: [{ filename: A2A_FILENAME, content_type: 'application/json', content: json.toString('base64') }] },
      { address: 'a@a.test', name: '' }, { inReplyTo: null, references: [] }, { maxSize: 10_000_000, traceId: 'trc_test' },
    );
    assert.match(composed.raw.toString(), /Content-Type: multipart\/mixed/);
    const parsed = await parseMessage(composed.raw);
    assert.equal(parsed.text?.trim(), 'human part');
    const found = findA2a(parsed.attachments);
    assert.equal(found.warning, null);
    assert.deepEqual(found.envelope, {
      mailroom_a2a: 1, type: 'request', intent: 'math.add', correlation_id: 'a2a_test_0001',
      payload: { text: 'grüße ✓', list: [1, null, true], nested: { deep: 'x' } },
      reply_expected_by: '2026-12-01T11:00:00.000Z', // normalised to UTC
    });
    // The same envelope always encodes to the same bytes (what lets an idempotent retry match).
    assert.deepEqual(encodeA2a(env()), encodeA2a(env()));
  });

  test('malformed parts give no envelope and an a2a_invalid warning; ordinary JSON attachments are ignored', () => {
    const cases: [string, ReturnType<typeof jsonPart>[], RegExp][] = [
      ['not JSON', [jsonPart('{"mailroom_a2a":1, "type": "request",')], /^a2a_invalid: the a2a part is not JSON/],
      ['not UTF-8', [jsonPart(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d]))], /^a2a_invalid: the a2a part is not JSON/],
      ['version 2', [jsonPart(JSON.stringify({ ...env(), mailroom_a2a: 2 }))], /^a2a_invalid: mailroom_a2a/],
      ['no payload', [jsonPart(JSON.stringify({ mailroom_a2a: 1, type: 'request', intent: 'x.y', correlation_id: 'a2a_test_0001' }))], /payload is required/],
      ['intent with a line break', [jsonPart(JSON.stringify({ mailroom_a2a: 1, ...env({ intent: 'x\r\nBcc: y' }) }))], /^a2a_invalid: intent/],
      ['short correlation id', [jsonPart(JSON.stringify({ mailroom_a2a: 1, ...env({ correlation_id: 'abc' }) }))], /correlation_id/],
      ['U+0000 in the payload', [jsonPart(JSON.stringify({ mailroom_a2a: 1, ...env({ payload: { s: 'a\u0000b' } }) }))], /U\+0000/],
      ['nested too deep', [jsonPart(JSON.stringify({ mailroom_a2a: 1, ...env({ payload: JSON.parse('['.repeat(MAX_DEPTH + 2) + ']'.repeat(MAX_DEPTH + 2)) }) }))], /nested deeper/],
      // Unnamed, but claiming to be a2a with the marker: still an a2a part, so still validated.
      ['unnamed and invalid', [jsonPart(JSON.stringify({ mailroom_a2a: 1, type: 'nope' }), 'data.json')], /^a2a_invalid: type/],
      ['two a2a parts', [jsonPart(encodeA2a(env())), jsonPart(encodeA2a(env({ correlation_id: 'a2a_test_0002' })), 'other.json')], /2 a2a parts/],
    ];
    for (const [what, parts, warning] of cases) {
      const r = findA2a(parts);
      assert.equal(r.envelope, null, what);
      assert.match(r.warning ?? '', warning, what);
      assert.doesNotMatch(r.warning ?? '', /[\u0000-\u001f]/, `${what}: the warning is storable`);
    }
    // A JSON attachment without the marker, and a text part, are ordinary content.
    assert.deepEqual(findA2a([jsonPart('{"invoice": 42}', 'invoice.json'), { filename: 'notes.txt', content_type: 'text/plain', content: Buffer.from('hi') }]), { envelope: null, warning: null });
  });

  test('size: a payload over 256 KiB is refused when composing (a2a_payload_too_large) and when received', () => {
    const fits = 'x'.repeat(MAX_PAYLOAD_BYTES - 2); // plus the two quotes: exactly the limit
    assert.equal(decodeA2a(encodeA2a(env({ payload: fits }))).payload, fits);
    assert.throws(() => encodeA2a(env({ payload: `${fits}x` })), (e: any) => e.code === 'a2a_payload_too_large' && /262145 bytes/.test(e.message));
    // Multi-byte characters count as their UTF-8 bytes.
    assert.throws(() => encodeA2a(env({ payload: 'é'.repeat(MAX_PAYLOAD_BYTES / 2) })), (e: any) => e.code === 'a2a_payload_too_large');
    const hand = Buffer.from(JSON.stringify({ mailroom_a2a: 1, ...env({ payload: `${fits}x` }) }));
    assert.match(findA2a([jsonPart(hand)]).warning ?? '', /^a2a_payload_too_large: payload is 262145 bytes/);
    assert.match(findA2a([jsonPart(Buffer.alloc(MAX_PART_BYTES + 1, 0x20))]).warning ?? '', /^a2a_payload_too_large: the a2a part is/);
  });

  test('trust: authenticated only with a DKIM pass aligned with From and a DMARC pass; SPF alone is not enough', () => {
    const dkim = (result: string, aligned: boolean, domain = 'a.test') => ({ result, domain, aligned });
    assert.deepEqual(a2aTrust({ dkim: [dkim('pass', true)], dmarc: { result: 'pass', domain: 'a.test' } }), { authenticated: true, authenticated_domain: 'a.test', signals: [] });
    // DMARC passed through aligned SPF, no signature at all: a forger on an authorised host.
    const spfOnly = a2aTrust({ dkim: [], dmarc: { result: 'pass', domain: 'a.test' } });
    assert.equal(spfOnly.authenticated, false);
    assert.deepEqual(spfOnly.signals.map((s) => s.kind), ['dkim_not_aligned_pass']);
    // A valid signature of another domain (a mailing service's own) is not the From domain's word.
    assert.equal(a2aTrust({ dkim: [dkim('pass', false, 'relay.example')], dmarc: { result: 'pass', domain: 'a.test' } }).authenticated, false);
    assert.deepEqual(a2aTrust({ dkim: [dkim('fail', true)], dmarc: { result: 'fail', domain: 'a.test' } }).signals.map((s) => s.kind), ['dkim_not_aligned_pass', 'dmarc_not_pass']);
    assert.deepEqual(a2aTrust({ dkim: [dkim('pass', true)], dmarc: { result: 'temperror', domain: 'a.test' } }).signals.map((s) => s.kind), ['dmarc_not_pass']);
    assert.deepEqual(a2aTrust(null).signals.map((s) => s.kind), ['no_auth_verdict']);
  });
});

/** A port nothing listens on now, for a server whose peer must know its SMTP port before it starts. */
async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

/** Publishes a served domain as the world would see it: MX to our loopback server, SPF, its DKIM key, DMARC reject. */
async function publish(dns: TestDns, m: TestMailroom, domain: string): Promise<void> {
  const d = (await m.api('GET', `/v1/domains/${domain}`)).body;
  const dkim = d.records.find((r: any) => r.purpose === 'dkim');
  dns.set(domain, [{ type: 'MX', exchange: `mx.${domain}`, priority: 10 }, { type: 'TXT', value: 'v=spf1 ip4:127.0.0.1 -all' }]);
  dns.set(`mx.${domain}`, [{ type: 'A', address: '127.0.0.1' }]);
  dns.set(dkim.name, [{ type: 'TXT', value: dkim.value }]);
  dns.set(`_dmarc.${domain}`, [{ type: 'TXT', value: 'v=DMARC1; p=reject' }]);
}

/** An a2a message composed by hand (MailComposer), optionally DKIM-signed with a key that is not the published one. */
async function forge(o: { from: string; to: string; envelope: Omit<A2aEnvelope, 'mailroom_a2a'>; inReplyTo?: string; signWith?: { domain: string; selector: string } }): Promise<Buffer> {
  const raw = await new MailComposer({
    from: o.from, to: o.to, subject: `[a2a] ${o.envelope.intent} (forged)`, text: 'A forged agent-to-agent message.',
    inReplyTo: o.inReplyTo, references: o.inReplyTo ? [o.inReplyTo] : undefined,
    attachments: [{ filename: A2A_FILENAME, contentType: 'application/json', content: encodeA2a(o.envelope) }],
  }).compile().build();
  if (!o.signWith) return raw;
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
  const r = await dkimSign(raw, { signatureData: [{ signingDomain: o.signWith.domain, selector: o.signWith.selector, privateKey }] } as never);
  return Buffer.concat([Buffer.from(r.signatures), raw]);
}

async function smtpDeliver(port: number, mailFrom: string, rcpt: string, data: Buffer): Promise<void> {
  const c = await SmtpClient.connect(port);
  await c.cmd('EHLO forger.example');
  const r = await c.send(mailFrom, [rcpt], data);
  assert.equal(r.data?.code, 250, r.data?.text);
  await c.quit();
}

for (const engine of ENGINES) {
  describe(`${engine}: a2a between two Mailroom servers (a.test, b.test) over SMTP`, { skip: await skipEngine(engine) }, () => {
    let dns: TestDns;
    let A: TestMailroom;
    let B: TestMailroom;
    let mrA: Mailroom;
    let mrB: Mailroom;
    let inboxA: { id: string; address: string };
    let inboxB: { id: string; address: string };
    const stop = new AbortController();
    let agent: Promise<void>;
    const agentErrors: unknown[] = [];
    const seenByAgent: string[] = [];
    /** The 'slow' intent waits on this before answering (test of a forged response racing the real one). */
    let slow: { arrived: (r: A2aReceived) => void; release: Promise<void> } | null = null;
    let releaseSlow = () => {};

    before(async () => {
      dns = await startDns();
      // Each server's MX port is the other's SMTP port: A's is fixed first so that B can be told it.
      const portA = await freePort();
      // Each keeps a pooled SMTP connection open to the other: at stop, neither waits 30 s for it.
      const common = { MAILROOM_DNS_SERVERS: dns.server, MAILROOM_SHUTDOWN_GRACE_SECONDS: '1' };
      B = await startTestMailroom(engine, { ...common, MAILROOM_DOMAIN: 'b.test', MAILROOM_HOSTNAME: 'mx.b.test', MAILROOM_MX_PORT: String(portA) });
      A = await startTestMailroom(engine, { ...common, MAILROOM_DOMAIN: 'a.test', MAILROOM_HOSTNAME: 'mx.a.test', MAILROOM_SMTP_PORT: String(portA), MAILROOM_MX_PORT: String(B.smtpPort) });
      await publish(dns, A, 'a.test');
      await publish(dns, B, 'b.test');
      mrA = new Mailroom({ baseUrl: A.api.base, token: A.adminToken });
      mrB = new Mailroom({ baseUrl: B.api.base, token: B.adminToken });
      inboxA = await mrA.inboxes.create({ username: 'planner' });
      inboxB = await mrB.inboxes.create({ username: 'calculator' });
      // B's agent: every authenticated request, from the inbox's events after this cursor.
      const { next_cursor } = await mrB.events.list({ inbox_id: inboxB.id });
      agent = (async () => {
        for await (const r of mrB.a2a.requests<any>(inboxB.id, { after: next_cursor ?? undefined, signal: stop.signal })) {
          seenByAgent.push(r.message.id);
          if (r.a2a.intent === 'ignore') continue;
          if (r.a2a.intent === 'slow' && slow) {
            slow.arrived(r);
            await slow.release;
            await mrB.a2a.respond(r.message.id, { answer: 'genuine' });
            continue;
          }
          await mrB.a2a.respond(r.message.id, { sum: r.a2a.payload.a + r.a2a.payload.b });
        }
      })().catch((err) => { if (!stop.signal.aborted) agentErrors.push(err); });
    });
    after(async () => {
      stop.abort();
      releaseSlow(); // a failed test may have left the agent waiting at the gate
      await agent;
      await A?.destroy();
      await B?.destroy();
      await dns?.close();
      assert.deepEqual(agentErrors, [], 'the agent loop ran without errors');
    });

    test('request(): A asks B by email, B\'s agent answers, A resolves with the payload; both ends verify DKIM and DMARC; one thread', async () => {
      const answer = await mrA.a2a.request<{ sum: number }>(inboxA.id, { to: inboxB.address, intent: 'math.add', payload: { a: 2, b: 40 }, timeoutMs: 40_000 });
      assert.deepEqual(answer, { sum: 42 });

      // B's copy of the request: received over SMTP from A's MX delivery, authenticated for a.test.
      const [reqSummary] = (await mrB.messages.list(inboxB.id, { a2a: 'request' })).data;
      const req = await mrB.messages.get(reqSummary.id);
      assert.equal(req.direction, 'inbound');
      assert.equal(req.from?.address, inboxA.address);
      assert.deepEqual(req.security?.auth?.dkim.map((d) => [d.result, d.domain, d.aligned]), [['pass', 'a.test', true]]);
      assert.equal(req.security?.auth?.dmarc.result, 'pass');
      assert.equal(req.a2a?.type, 'request');
      assert.deepEqual(req.a2a?.payload, { a: 2, b: 40 });
      assert.equal(req.a2a?.authenticated, true);
      assert.equal(req.a2a?.authenticated_domain, 'a.test');
      assert.ok(req.a2a?.reply_expected_by && Date.parse(req.a2a.reply_expected_by) > Date.now(), 'the deadline travelled with the request');
      assert.equal(reqSummary.a2a?.correlation_id, req.a2a?.correlation_id);
      assert.equal('payload' in (reqSummary.a2a ?? {}), false, 'lists leave the payload out');
      // What travelled: multipart/mixed, a text part for people, the JSON part for agents.
      const raw = Buffer.from(await mrB.messages.raw(req.id)).toString('latin1');
      assert.match(raw, /Content-Type: multipart\/mixed/);
      assert.match(raw, /Content-Type: text\/plain/);
      assert.match(raw, /Content-Type: application\/json; name=mailroom-a2a\.json/);
      assert.match(req.text ?? '', /agent-to-agent request[\s\S]*Intent: math\.add/);
      assert.deepEqual(req.attachments.map((a) => [a.filename, a.content_type]), [[A2A_FILENAME, 'application/json']]);

      // A's side: the request it sent and the response it got, one correlation id, one thread.
      const cid = req.a2a!.correlation_id;
      const both = (await mrA.messages.list(inboxA.id, { a2a_correlation_id: cid })).data;
      assert.deepEqual(both.map((m) => [m.direction, m.a2a?.type]), [['inbound', 'response'], ['outbound', 'request']]);
      const [resp, sent] = [await mrA.messages.get(both[0].id), both[1]];
      assert.equal(resp.thread_id, sent.thread_id);
      assert.equal(resp.in_reply_to, sent.message_id, 'an email reply: In-Reply-To is the request');
      assert.ok(resp.references.includes(sent.message_id!));
      assert.equal(resp.a2a?.in_reply_to, sent.message_id);
      assert.equal(resp.a2a?.authenticated, true);
      assert.equal(resp.a2a?.authenticated_domain, 'b.test');
      assert.deepEqual(resp.security?.auth?.dkim.map((d) => [d.result, d.domain, d.aligned]), [['pass', 'b.test', true]]);
      assert.equal(sent.a2a?.authenticated, null, 'what A sent carries no verdict of its own');

      // One request, one response: repeating respond replays it; another payload is refused.
      const again = await mrB.a2a.respond(req.id, { sum: 42 });
      assert.equal(again.message.in_reply_to, req.message_id);
      const outB = (await mrB.messages.list(inboxB.id, { direction: 'outbound' })).data;
      assert.deepEqual(outB.map((m) => m.id), [again.message.id], 'the repeat sent nothing new');
      await assert.rejects(mrB.a2a.respond(req.id, { sum: 43 }), (e: any) => e instanceof MailroomApiError && e.code === 'idempotency_key_reused');
    });

    test('forged requests to B (no DKIM signature; a signature by an unpublished key) are stored as unauthenticated, never reach the agent, cannot be answered', async () => {
      const since = new Date().toISOString();
      const selector = (await A.api('GET', '/v1/domains/a.test')).body.dkim_selector;
      const unsigned = await forge({ from: inboxA.address, to: inboxB.address, envelope: env({ correlation_id: 'a2a_forged_nosig', payload: { a: 1, b: 1 } }) });
      const badSig = await forge({ from: inboxA.address, to: inboxB.address, envelope: env({ correlation_id: 'a2a_forged_badsig', payload: { a: 1, b: 2 } }), signWith: { domain: 'a.test', selector } });
      // MAIL FROM a.test from 127.0.0.1, which a.test's SPF authorises: SPF (and so DMARC) may pass.
      await smtpDeliver(B.smtpPort, inboxA.address, inboxB.address, unsigned);
      await smtpDeliver(B.smtpPort, inboxA.address, inboxB.address, badSig);
      const forged = await waitFor(async () => {
        const page = (await mrB.messages.list(inboxB.id, { since, direction: 'inbound' })).data;
        return page.length === 2 ? page : null;
      }, 20_000, 'both forged messages');
      const byCid = Object.fromEntries(await Promise.all(forged.map(async (s) => { const m = await mrB.messages.get(s.id); return [m.a2a?.correlation_id, m]; })));
      const nosig = byCid.a2a_forged_nosig;
      const bad = byCid.a2a_forged_badsig;
      assert.ok(nosig && bad, 'both are kept, with their a2a part read');
      assert.equal(nosig.a2a.authenticated, false);
      assert.deepEqual(nosig.a2a.signals.map((s: any) => s.kind), ['dkim_not_aligned_pass'], 'DMARC passed on SPF alone: the missing signature is what fails it');
      assert.equal(nosig.security.auth.dmarc.result, 'pass');
      assert.equal(bad.a2a.authenticated, false);
      assert.equal(bad.security.auth.dkim[0].result, 'fail');
      assert.deepEqual(bad.a2a.signals.map((s: any) => s.kind), ['dkim_not_aligned_pass'].concat(bad.security.auth.dmarc.result === 'pass' ? [] : ['dmarc_not_pass']));

      // The a2a filters never match them, and they are not answerable.
      assert.deepEqual((await mrB.messages.list(inboxB.id, { a2a: 'request', since })).data, []);
      assert.equal(await mrB.inboxes.waitForReply(inboxB.id, { a2a_correlation_id: 'a2a_forged_nosig', since, timeoutMs: 1000 }), null);
      for (const m of [nosig, bad]) {
        await assert.rejects(mrB.a2a.respond(m.id, { sum: 0 }), (e: any) => e instanceof MailroomApiError && e.status === 422 && e.code === 'a2a_unauthenticated');
      }
      // The agent's loop saw neither (it reads events within a tick; give it a few).
      await new Promise((r) => setTimeout(r, 1000));
      assert.ok(!seenByAgent.includes(nosig.id) && !seenByAgent.includes(bad.id), 'the agent never got a forged request');
      assert.deepEqual((await mrB.messages.list(inboxB.id, { direction: 'outbound', since })).data, [], 'nothing was sent in answer');
    });

    test('a forged response carrying the pending request\'s correlation id, in its thread, does not resolve request(); the genuine one does', async () => {
      let arrived!: (r: A2aReceived) => void;
      const got = new Promise<A2aReceived>((r) => { arrived = r; });
      slow = { arrived, release: new Promise<void>((r) => { releaseSlow = r; }) };
      let settled = false;
      const pending = mrA.a2a.request(inboxA.id, { to: inboxB.address, intent: 'slow', payload: {}, timeoutMs: 40_000 }).finally(() => { settled = true; });
      pending.catch(() => {}); // awaited below; a failure before that must not become an unhandled rejection

      const received = await got;
      const cid = received.a2a.correlation_id;
      // The forger knows everything a2a needs: the correlation id and the request's Message-ID.
      const forgedResponse = await forge({
        from: inboxB.address, to: inboxA.address, inReplyTo: received.message.message_id!,
        envelope: { type: 'response', intent: 'slow', payload: { answer: 'forged' }, correlation_id: cid, in_reply_to: received.message.message_id },
      });
      await smtpDeliver(A.smtpPort, inboxB.address, inboxA.address, forgedResponse);
      const forged = await waitFor(async () => {
        const page = (await mrA.messages.list(inboxA.id, { direction: 'inbound', q: 'forged' })).data;
        return page[0] ?? null;
      }, 20_000, 'the forged response in A');
      const f = await mrA.messages.get(forged.id);
      assert.equal(f.a2a?.correlation_id, cid);
      assert.equal(f.a2a?.authenticated, false);
      const [request] = (await mrA.messages.list(inboxA.id, { a2a_correlation_id: cid })).data;
      assert.equal(f.thread_id, request.thread_id, 'threading alone would have matched it');
      await new Promise((r) => setTimeout(r, 750));
      assert.equal(settled, false, 'request() ignored the forged response');

      releaseSlow();
      assert.deepEqual(await pending, { answer: 'genuine' });
      slow = null;
    });

    test('refusals and timeouts: oversized payload 413, bad intent 400, answering a non-a2a message 422; request() with nobody answering rejects with A2aTimeoutError', async () => {
      const queued = await outboundCount(A);
      const big = await A.api('POST', `/v1/inboxes/${inboxA.id}/a2a/requests`, { to: inboxB.address, intent: 'math.add', payload: 'x'.repeat(MAX_PAYLOAD_BYTES) });
      assert.equal(big.status, 413);
      assert.equal(big.body.code, 'a2a_payload_too_large');
      const badIntent = await A.api('POST', `/v1/inboxes/${inboxA.id}/a2a/requests`, { to: inboxB.address, intent: 'two words', payload: 1 });
      assert.equal(badIntent.status, 400);
      assert.equal(badIntent.body.code, 'invalid_request');
      const noPayload = await A.api('POST', `/v1/inboxes/${inboxA.id}/a2a/requests`, { to: inboxB.address, intent: 'x' });
      assert.equal(noPayload.status, 400);
      assert.equal(await outboundCount(A), queued, 'nothing refused was queued');

      // An idempotent request: the same key is the same request, with the same correlation id.
      const first = await A.api('POST', `/v1/inboxes/${inboxA.id}/a2a/requests`, { to: inboxB.address, intent: 'ignore', payload: { n: 1 }, idempotency_key: 'ask-once' });
      const second = await A.api('POST', `/v1/inboxes/${inboxA.id}/a2a/requests`, { to: inboxB.address, intent: 'ignore', payload: { n: 1 }, idempotency_key: 'ask-once' });
      assert.equal(first.status, 202);
      assert.equal(second.headers.get('idempotent-replayed'), 'true');
      assert.equal(second.body.correlation_id, first.body.correlation_id);
      assert.equal(second.body.message.id, first.body.message.id);
      assert.equal(first.body.message.a2a.correlation_id, first.body.correlation_id);

      // A plain email is not an a2a request.
      const plain = (await A.api('POST', `/v1/inboxes/${inboxA.id}/messages`, { to: inboxB.address, subject: 'plain', text: 'hello' })).body;
      const plainAtB = await waitFor(async () => (await mrB.messages.list(inboxB.id, { q: 'plain' })).data[0], 20_000, 'the plain email at B');
      await assert.rejects(mrB.a2a.respond(plainAtB.id, {}), (e: any) => e.status === 422 && e.code === 'a2a_not_a_request');
      await assert.rejects(mrA.a2a.respond(plain.id, {}), (e: any) => e.status === 422 && e.code === 'a2a_not_a_request', 'nor is an outbound message');

      const t0 = Date.now();
      await assert.rejects(
        mrA.a2a.request(inboxA.id, { to: inboxB.address, intent: 'ignore', payload: { n: 2 }, timeoutMs: 1500 }),
        (e: any) => e instanceof A2aTimeoutError && /^a2a_[0-9a-f]{32}$/.test(e.correlationId) && e.messageId.startsWith('msg_') && e.timeoutMs === 1500,
      );
      assert.ok(Date.now() - t0 < 10_000);
    });

    test('MCP: a2a_request sends and returns the authenticated response payload; a2a_respond refuses a forged request', async () => {
      const client = new Client({ name: 'a2a-test', version: '1.0.0' });
      await client.connect(new StreamableHTTPClientTransport(new URL(`${A.api.base}/mcp`), { requestInit: { headers: { authorization: `Bearer ${A.adminToken}` } } }));
      const clientB = new Client({ name: 'a2a-test-b', version: '1.0.0' });
      await clientB.connect(new StreamableHTTPClientTransport(new URL(`${B.api.base}/mcp`), { requestInit: { headers: { authorization: `Bearer ${B.adminToken}` } } }));
      try {
        const r = await client.callTool({ name: 'a2a_request', arguments: { inbox_id: inboxA.id, to: inboxB.address, intent: 'math.add', payload: { a: 20, b: 3 }, wait_seconds: 40, idempotency_key: 'mcp-ask-1' } }) as CallToolResult;
        assert.ok(!r.isError, JSON.stringify(r.content));
        const out = r.structuredContent as any;
        assert.equal(out.timed_out, false);
        assert.deepEqual(out.response.payload, { sum: 23 });
        assert.equal(out.response.authenticated_domain, 'b.test');
        assert.match(out.correlation_id, /^a2a_[0-9a-f]{32}$/);
        // Calling again with the key sends nothing new and finds the same response.
        const again = await client.callTool({ name: 'a2a_request', arguments: { inbox_id: inboxA.id, to: inboxB.address, intent: 'math.add', payload: { a: 20, b: 3 }, wait_seconds: 5, idempotency_key: 'mcp-ask-1' } }) as CallToolResult;
        assert.deepEqual([(again.structuredContent as any).replayed, (again.structuredContent as any).message_id, (again.structuredContent as any).response?.message_id], [true, out.message_id, out.response.message_id]);

        const [forged] = (await mrB.messages.list(inboxB.id, { q: 'forged' })).data;
        const refused = await clientB.callTool({ name: 'a2a_respond', arguments: { message_id: forged.id, payload: { sum: 0 } } }) as CallToolResult;
        assert.equal(refused.isError, true);
        assert.match((refused.content[0] as { text: string }).text, /^a2a_unauthenticated: /);
      } finally {
        await client.close();
        await clientB.close();
      }
    });
  });
}

async function outboundCount(m: TestMailroom): Promise<number> {
  return Number((await m.store.db.selectFrom('outbound').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);
}
