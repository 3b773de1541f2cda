import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import {
  Mailroom, MailroomApiError, MailroomConnectionError, MailroomError, Page, verifyWebhook, WebhookVerificationError,
  type Event, type FetchLike, type Inbox,
} from '../packages/sdk/src/index.ts';
import { SseParser } from '../packages/sdk/src/sse.ts';
import { ENGINES, skipEngine, startTestMailroom, waitFor, type TestMailroom } from './helpers/mailroom.ts';

/**
 * @mailroom/sdk (packages/sdk) against a real Mailroom: inboxes, local sending and wait-for-reply,
 * auto-pagination, the SSE event stream surviving a dropped connection, retries that keep their
 * Idempotency-Key through a lost response, typed errors, and Standard Webhooks verification.
 */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

// ---- A tiny HTTP proxy in front of the real server, to break things on purpose ----

type Fault = 'lose-response' | '503' | null;
interface ProxyLog { method: string; path: string; idempotencyKey: string | null; fault: Fault }
interface Proxy {
  url: string;
  log: ProxyLog[];
  /** Decides, per request, whether to break it (called once per request, in arrival order). */
  fault: (method: string, path: string) => Fault;
  close(): Promise<void>;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'content-encoding', 'host']);

async function startProxy(target: string): Promise<Proxy> {
  const proxy: Proxy = { url: '', log: [], fault: () => null, close: async () => {} };
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const path = req.url ?? '/';
    const fault = proxy.fault(req.method ?? 'GET', path);
    proxy.log.push({ method: req.method ?? 'GET', path, idempotencyKey: (req.headers['idempotency-key'] as string | undefined) ?? null, fault });
    if (fault === '503') {
      res.writeHead(503, { 'content-type': 'application/problem+json', 'retry-after': '0' });
      res.end(JSON.stringify({ type: 'about:blank', title: 'Unavailable', status: 503, code: 'storage_unavailable', detail: 'try again' }));
      return;
    }
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) if (!HOP_BY_HOP.has(k) && typeof v === 'string') headers.set(k, v);
    const up = await fetch(target + path, { method: req.method, headers, body: body.length ? body : undefined });
    const bytes = Buffer.from(await up.arrayBuffer());
    if (fault === 'lose-response') {
      // The server did the work; the client never hears about it.
      req.socket.destroy();
      return;
    }
    const out: Record<string, string> = {};
    up.headers.forEach((v, k) => { if (!HOP_BY_HOP.has(k)) out[k] = v; });
    res.writeHead(up.status, out);
    res.end(bytes);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.close = () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); });
  return proxy;
}

/** Breaks the first request matching method and path with `fault`, then lets everything through. */
function faultOnce(method: string, path: RegExp, fault: Exclude<Fault, null>): (m: string, p: string) => Fault {
  let done = false;
  return (m, p) => {
    if (done || m !== method || !path.test(p)) return null;
    done = true;
    return fault;
  };
}

// ---- A fetch that lets a test cut the current event-stream connection ----

interface Cuttable {
  fetch: FetchLike;
  /** Drops the current stream connection (its body errors, as when the network fails). */
  cut(): void;
  /** Last-Event-ID of each stream connection, in order (null: none). */
  opened: (string | null)[];
  /** Resolves once a stream connection's response head has arrived. */
  connected(n: number): Promise<void>;
  /** While closed, new stream connections wait before reaching the server. */
  hold: boolean;
}

function cuttableFetch(): Cuttable {
  let current: AbortController | null = null;
  let responses = 0;
  const c: Cuttable = {
    opened: [],
    hold: false,
    cut: () => current?.abort(new Error('connection dropped by the test')),
    connected: (n) => waitFor(async () => responses >= n || null, 20_000, `stream connection ${n}`).then(() => {}),
    fetch: async (input, init) => {
      if (!String(input).includes('/v1/events/stream')) return fetch(input, init);
      c.opened.push(new Headers(init?.headers).get('last-event-id'));
      while (c.hold) await new Promise((r) => setTimeout(r, 50));
      const ac = new AbortController();
      init?.signal?.addEventListener('abort', () => ac.abort(), { once: true });
      current = ac;
      const res = await fetch(input, { ...init, signal: ac.signal });
      responses++;
      return res;
    },
  };
  return c;
}

// ---- Standard Webhooks signing, independently of the SDK (node:crypto) ----

function sign(secret: string, id: string, timestamp: number, body: string): string {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}
const newSecret = () => `whsec_${randomBytes(24).toString('base64')}`;

describe('sdk: verifyWebhook (Standard Webhooks)', () => {
  const secret = newSecret();
  const body = JSON.stringify({ type: 'message.received', timestamp: new Date().toISOString(), data: { id: 'evt_1', type: 'message.received' } });
  const now = () => Math.floor(Date.now() / 1000);
  const headersFor = (sig: string, ts = now(), id = 'msg_wh_1') => ({ 'webhook-id': id, 'webhook-timestamp': String(ts), 'webhook-signature': sig });
  const rejects = (p: Promise<unknown>, re: RegExp) => assert.rejects(p, (e: unknown) => e instanceof WebhookVerificationError && e instanceof MailroomError && re.test((e as Error).message));

  test('a valid delivery verifies and returns the parsed payload, from a plain object, a Headers and bytes', async () => {
    const ts = now();
    const h = headersFor(sign(secret, 'msg_wh_1', ts, body), ts);
    const payload = await verifyWebhook(h, body, secret);
    assert.equal(payload.type, 'message.received');
    assert.equal(payload.data.id, 'evt_1');
    assert.deepEqual(await verifyWebhook(new Headers(h), new TextEncoder().encode(body), secret), payload);
    // Node's req.headers are lower-case already; other frameworks capitalise.
    assert.deepEqual(await verifyWebhook({ 'Webhook-Id': h['webhook-id'], 'Webhook-Timestamp': h['webhook-timestamp'], 'Webhook-Signature': h['webhook-signature'] }, body, [secret]), payload);
  });

  test('a tampered body, a wrong secret, a stale or future timestamp and missing headers are refused', async () => {
    const ts = now();
    const sig = sign(secret, 'msg_wh_1', ts, body);
    await rejects(verifyWebhook(headersFor(sig, ts), body.replace('evt_1', 'evt_2'), secret), /no matching signature/);
    await rejects(verifyWebhook(headersFor(sig, ts), body, newSecret()), /no matching signature/);
    await rejects(verifyWebhook(headersFor(sig, ts, 'msg_other'), body, secret), /no matching signature/);
    // The clock pinned to `ts`: one second off the tolerance on either side is refused, whenever
    // the next second begins (unpinned, a verification in the next second took ts + 301 as within
    // tolerance: CI failed so once).
    const at = { now: ts * 1000 };
    const stale = ts - 301;
    await rejects(verifyWebhook(headersFor(sign(secret, 'msg_wh_1', stale, body), stale), body, secret, at), /too old/);
    const future = ts + 301;
    await rejects(verifyWebhook(headersFor(sign(secret, 'msg_wh_1', future, body), future), body, secret, at), /future/);
    // Within a wider tolerance the stale one is fine: the signature itself was right.
    await verifyWebhook(headersFor(sign(secret, 'msg_wh_1', stale, body), stale), body, secret, { ...at, toleranceSeconds: 600 });
    await rejects(verifyWebhook({ 'webhook-id': 'x', 'webhook-timestamp': String(ts) }, body, secret), /missing/);
    await rejects(verifyWebhook(headersFor('v2,abc', ts), body, secret), /no v1 signature/);
    await rejects(verifyWebhook(headersFor(sig.slice(0, -4) + 'AAA=', ts), body, secret), /no matching signature/);
    await assert.rejects(verifyWebhook(headersFor(sig, ts), body, 'whsec_%%%'), TypeError, 'a malformed secret is a programming error, not a bad delivery');
  });

  test('during a rotation: two signatures, either secret verifies; several secrets may be passed', async () => {
    const old = newSecret();
    const ts = now();
    const both = `${sign(secret, 'msg_wh_1', ts, body)} ${sign(old, 'msg_wh_1', ts, body)}`;
    await verifyWebhook(headersFor(both, ts), body, secret);
    await verifyWebhook(headersFor(both, ts), body, old);
    await verifyWebhook(headersFor(sign(old, 'msg_wh_1', ts, body), ts), body, [secret, old]);
    await rejects(verifyWebhook(headersFor(both, ts), body, [newSecret(), newSecret()]), /no matching signature/);
  });
});

describe('sdk: the SSE parser', () => {
  test('frames split anywhere, CRLF / CR / LF line ends, comments, multi-line data, a persisting id, a BOM', () => {
    const text = '\ufeff: hello\r\nevent: ready\r\ndata: {"cursor":null}\r\nretry: 2000\r\n\r\nid: 1-1\nevent: message.received\ndata: a\ndata: b\n\n: keep-alive\n\nevent: x\rdata: c\r\r';
    for (let cut = 0; cut <= text.length; cut++) {
      const p = new SseParser();
      const out = [...p.push(text.slice(0, cut)), ...p.push(text.slice(cut))];
      assert.deepEqual(out.map((f) => [f.event, f.data, f.id, f.hasId]), [
        ['ready', '{"cursor":null}', undefined, false],
        ['message.received', 'a\nb', '1-1', true],
        ['x', 'c', '1-1', false],
      ], `split at ${cut}`);
      assert.equal(out[0].retry, 2000);
    }
  });
});

for (const engine of ENGINES) {
  describe(`${engine}: @mailroom/sdk against a running Mailroom`, { skip: await skipEngine(engine) }, () => {
    let m: TestMailroom;
    let mr: Mailroom;
    let a: Inbox;
    let b: Inbox;
    before(async () => {
      // The server caps each wait at 1 s: waitForReply has to loop over several slices.
      m = await startTestMailroom(engine, { MAILROOM_EVENT_POLL_MS: '50', MAILROOM_WAIT_MAX_SECONDS: '1', MAILROOM_WEBHOOK_ALLOW: '127.0.0.1/32' });
      mr = new Mailroom({ baseUrl: m.api.base, token: m.adminToken });
      a = await mr.inboxes.create({ username: 'sdk-a', display_name: 'Agent A' });
      b = await mr.inboxes.create({ username: 'sdk-b', metadata: { role: 'receiver' } });
    });
    after(async () => { await m?.destroy(); });

    test('inboxes: create (idempotent by client_id), get, update, list as a Page and for await, delete', async () => {
      assert.match(a.id, /^inb_/);
      assert.equal(a.address, 'sdk-a@mailroom.test');
      assert.equal((await mr.inboxes.get(b.id)).metadata.role, 'receiver');
      const c1 = await mr.inboxes.create({ client_id: 'sdk/crew-1' });
      const c2 = await mr.inboxes.create({ client_id: 'sdk/crew-1' });
      assert.equal(c2.id, c1.id);
      assert.equal((await mr.inboxes.update(c1.id, { display_name: 'Crew 1' })).display_name, 'Crew 1');

      const page = await mr.inboxes.list({ limit: 1 });
      assert.ok(page instanceof Page);
      assert.equal(page.data.length, 1);
      assert.ok(page.next_cursor);
      const all: string[] = [];
      for await (const i of mr.inboxes.list({ limit: 1 })) all.push(i.id);
      assert.ok([a.id, b.id, c1.id].every((id) => all.includes(id)), 'iteration walks every page');
      assert.equal(new Set(all).size, all.length);
      const fromPage: string[] = [];
      for await (const i of page) fromPage.push(i.id);
      assert.deepEqual(fromPage, all, 'a Page iterates from itself on');

      await mr.inboxes.delete(c1.id);
      await assert.rejects(mr.inboxes.get(c1.id), (e: unknown) => e instanceof MailroomApiError && e.code === 'not_found');
    });

    test('send from one inbox to the other (local delivery); waitForReply on the receiver returns it; the reply threads back', async () => {
      const since = new Date();
      // The wait starts before the message exists: several 1 s server slices pass before it arrives.
      const waiting = mr.inboxes.waitForReply(b.id, { from: a.address, timeoutMs: 30_000 });
      await new Promise((r) => setTimeout(r, 1500));
      const attachment = new TextEncoder().encode('id,score\n42,0.9\n');
      const sent = await mr.messages.send(a.id, {
        to: b.address, subject: 'Handoff: lead 42', text: 'Please research lead 42.',
        attachments: [{ filename: 'leads.csv', content_type: 'text/csv', content: attachment }],
        labels: ['handoff'], metadata: { lead: 42 },
      });
      assert.equal(sent.direction, 'outbound');
      assert.match(sent.delivery!.idempotency_key!, UUID, 'the SDK made up an idempotency key');
      assert.deepEqual(sent.delivery!.labels, ['handoff']);
      const got = await waiting;
      assert.ok(got, 'waitForReply returned the message');
      assert.equal(got.subject, 'Handoff: lead 42');
      assert.equal(got.message_id, sent.message_id);
      assert.match(got.text ?? '', /research lead 42/);

      // Already there: answers at once, given `since`.
      const t0 = Date.now();
      assert.equal((await mr.inboxes.waitForReply(b.id, { since, from: a.address, timeoutMs: 10_000 }))?.id, got.id);
      assert.ok(Date.now() - t0 < 3000);

      const full = await mr.messages.get(got.id);
      assert.equal(full.delivery, null);
      assert.equal(full.attachments.length, 1);
      const att = await mr.messages.attachment(got.id, full.attachments[0].id);
      assert.deepEqual(att.content, attachment);
      assert.equal(att.filename, 'leads.csv');
      assert.match(att.contentType, /^text\/csv/);
      assert.equal(att.sha256, full.attachments[0].sha256);
      const raw = new TextDecoder().decode(await mr.messages.raw(got.id));
      assert.match(raw, /^Received: /);
      assert.match(raw, /Subject: Handoff: lead 42/);
      const view = await mr.messages.getAgentView(got.id);
      assert.equal(view.view, 'agent');
      assert.match(view.text, /research lead 42/);

      const reply = await mr.messages.reply(got.id, { text: 'Done.' });
      assert.equal(reply.subject, 'Re: Handoff: lead 42');
      const back = await mr.inboxes.waitForReply(a.id, { thread_id: sent.thread_id, since, timeoutMs: 30_000 });
      assert.equal(back?.in_reply_to, sent.message_id);
      const thread = await mr.threads.get(sent.thread_id);
      assert.deepEqual(thread.messages.map((x) => x.direction), ['outbound', 'inbound']);
      const threads = await mr.threads.list(a.id).toArray();
      assert.ok(threads.some((t) => t.id === sent.thread_id));

      // Nothing matching: null once the overall timeout passes (over two server slices).
      const t1 = Date.now();
      assert.equal(await mr.inboxes.waitForReply(b.id, { from: 'nobody@example.com', timeoutMs: 2200 }), null);
      const took = Date.now() - t1;
      assert.ok(took >= 2100 && took < 6000, `waited ${took} ms`);
    });

    test('messages.list auto-paginates: limit 2 over 5 messages yields every message once, with filters', async () => {
      const inbox = await mr.inboxes.create({ username: 'sdk-pages' });
      for (let i = 0; i < 5; i++) await mr.messages.send(a.id, { to: inbox.address, subject: `page test ${i}`, text: `number ${i}` });
      await waitFor(async () => (await mr.messages.list(inbox.id, { limit: 200 })).data.length === 5 || null, 30_000, 'five messages');

      const first = await mr.messages.list(inbox.id, { limit: 2 });
      assert.equal(first.data.length, 2);
      assert.ok(first.hasNextPage());
      const seen: string[] = [];
      const subjects: string[] = [];
      for await (const msg of mr.messages.list(inbox.id, { limit: 2 })) { seen.push(msg.id); subjects.push(msg.subject ?? ''); }
      assert.equal(seen.length, 5);
      assert.equal(new Set(seen).size, 5, 'none twice');
      assert.deepEqual(subjects.toSorted(), [0, 1, 2, 3, 4].map((i) => `page test ${i}`));
      assert.deepEqual(seen, (await mr.messages.list(inbox.id, { limit: 200 })).data.map((x) => x.id), 'the order of one big page, across three');
      const pages: number[] = [];
      for await (const p of first.pages()) pages.push(p.data.length);
      assert.deepEqual(pages, [2, 2, 1]);

      assert.deepEqual((await mr.messages.list(inbox.id, { q: 'number 3' }).toArray()).map((x) => x.subject), ['page test 3']);
      assert.equal((await mr.messages.list(inbox.id, { from: a.address, direction: 'inbound', limit: 2 }).toArray()).length, 5);
      assert.equal((await mr.messages.list(inbox.id, { from: '@elsewhere.example' }).toArray()).length, 0);
      assert.equal((await mr.messages.list(inbox.id, { limit: 2 }).toArray(3)).length, 3);
    });

    test('events.stream sees new events, and after its connection is dropped mid-stream it resumes from the last one: none missed, none twice', async () => {
      const inbox = await mr.inboxes.create({ username: 'sdk-stream' });
      // The log shows an event once every older transaction has finished (events/feed.ts): on a busy
      // PostgreSQL that can take a moment after the creating request returned.
      const start = await waitFor(async () => (await mr.events.list({ inbox_id: inbox.id })).next_cursor, 10_000, 'the inbox.created event to be visible');
      assert.ok(start, 'the inbox.created event gives a position');

      const net = cuttableFetch();
      const opened = net.opened;
      const sdk = new Mailroom({ baseUrl: m.api.base, token: m.adminToken, fetch: net.fetch });

      const stop = new AbortController();
      const seen: Event[] = [];
      const cursorsAtCut: string[] = [];
      const consuming = (async () => {
        for await (const e of sdk.events.stream({ after: start, inbox_id: inbox.id, signal: stop.signal })) {
          seen.push(e);
          if (seen.length === 3 || seen.length === 7) { cursorsAtCut.push(e.cursor); net.cut(); }
        }
      })();

      const N = 12;
      // Three bursts of four; the cuts fall in the first two, so later events need the new connections.
      for (let i = 0; i < N; i++) {
        await mr.messages.send(a.id, { to: inbox.address, subject: `stream ${i}`, text: `event ${i}` });
        if (i % 4 === 3 && i < N - 1) await waitFor(async () => seen.length > i || null, 30_000, `event ${i} on the stream`);
      }
      const logged = await waitFor(async () => {
        const all: Event[] = [];
        let after = start;
        for (;;) {
          const p = await mr.events.list({ after, inbox_id: inbox.id, limit: 5 });
          all.push(...p.data);
          if (!p.data.length) break;
          after = p.next_cursor!;
        }
        return all.filter((e) => e.type === 'message.received').length >= N ? all : null;
      }, 40_000, `${N} message.received events in the log`);
      await waitFor(async () => seen.length >= logged.length || null, 20_000, 'the stream to catch up');
      await waitFor(async () => opened.length >= 3 || null, 10_000, 'the reconnect after the second cut');
      await new Promise((r) => setTimeout(r, 300)); // a repeat would show up now
      stop.abort();
      await consuming; // the iteration ends without an error when its signal aborts

      assert.deepEqual(seen.map((e) => e.id), logged.map((e) => e.id), 'the stream saw exactly the log, in order');
      assert.ok(opened.length >= 3, `reconnected after each cut (${opened.length} connections)`);
      assert.equal(opened[0], start, 'the first connection starts after `after`');
      // Each reconnect carried the cursor of the last event the consumer had received by then: the
      // one it was handling at the cut, or one after it already read off the dropped connection.
      const at = opened.slice(1).map((c) => seen.findIndex((e) => e.cursor === c));
      assert.ok(at.every((i) => i >= 0), `every Last-Event-ID is a seen event's cursor: ${opened.join(' ')}`);
      assert.ok(at[0] >= 2 && at[1] >= 6, `resumed after the 3rd and the 7th event (at ${at.join(',')})`);
      assert.deepEqual(cursorsAtCut.length, 2);
      assert.equal(seen.filter((e) => e.type === 'message.received').length, N);
    });

    test('events.stream without `after` starts at the head (no old events), and a drop before the first event resumes from the position the stream started at', async () => {
      const inbox = await mr.inboxes.create({ username: 'sdk-head' });
      await mr.messages.send(a.id, { to: inbox.address, subject: 'old news', text: 'x' });
      const received = (n: number) => waitFor(async () => {
        const d = (await mr.events.list({ inbox_id: inbox.id, types: ['message.received'] })).data;
        return d.length >= n ? d : null;
      }, 30_000, `${n} message.received`);
      await received(1);

      const net = cuttableFetch();
      const sdk = new Mailroom({ baseUrl: m.api.base, token: m.adminToken, fetch: net.fetch });
      const stop = new AbortController();
      const it = sdk.events.stream({ inbox_id: inbox.id, types: ['message.received'], signal: stop.signal })[Symbol.asyncIterator]();
      const first = it.next();
      await net.connected(1);
      await new Promise((r) => setTimeout(r, 300)); // the ready frame has been read
      // Cut before any event, and keep the stream away while a message arrives: reconnecting "at the
      // head" would skip it; resuming from the ready frame's position does not.
      net.hold = true;
      net.cut();
      await mr.messages.send(a.id, { to: inbox.address, subject: 'while away', text: 'x' });
      await received(2);
      net.hold = false;
      const r = await Promise.race([first, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the event sent during the drop never came')), 20_000))]);
      assert.equal(r.done, false);
      assert.equal((r.value as Event).data.subject, 'while away', 'the old event was not replayed, the one during the drop was not missed');
      assert.equal(net.opened[0], null);
      assert.ok(net.opened[1], 'the reconnect carried the position from the ready frame');
      stop.abort();
      assert.equal((await it.next()).done, true, 'aborting ends the iteration');
    });

    test('retries: a lost response to a send is retried with the same Idempotency-Key and sends once; a 503 with Retry-After too; a non-idempotent POST is not retried', async () => {
      const proxy = await startProxy(m.api.base);
      try {
        const viaProxy = new Mailroom({ baseUrl: proxy.url, token: m.adminToken, maxRetries: 2 });
        const inbox = await mr.inboxes.create({ username: 'sdk-retry' });

        // 1. The server stores and queues the send, then the response is lost.
        proxy.fault = faultOnce('POST', new RegExp(`^/v1/inboxes/${a.id}/messages$`), 'lose-response');
        const sent = await viaProxy.messages.send(a.id, { to: inbox.address, subject: 'lost response', text: 'once only' });
        const posts = proxy.log.filter((l) => l.method === 'POST' && l.path === `/v1/inboxes/${a.id}/messages`);
        assert.equal(posts.length, 2, 'one retry');
        assert.equal(posts[0].fault, 'lose-response');
        assert.match(posts[0].idempotencyKey ?? '', UUID);
        assert.equal(posts[1].idempotencyKey, posts[0].idempotencyKey, 'the retry carried the same key');
        assert.equal(sent.delivery?.idempotency_key, posts[0].idempotencyKey);

        // 2. A 503 (with Retry-After: 0) before the server saw a reply request.
        const received = await waitFor(async () => (await mr.messages.list(inbox.id).toArray())[0], 30_000, 'the message');
        proxy.fault = faultOnce('POST', /\/reply$/, '503');
        const reply = await viaProxy.messages.reply(received.id, { text: 'one reply' }, { idempotencyKey: 'sdk-test-reply-1' });
        const replies = proxy.log.filter((l) => l.path === `/v1/messages/${received.id}/reply`);
        assert.deepEqual(replies.map((l) => [l.fault, l.idempotencyKey]), [['503', 'sdk-test-reply-1'], [null, 'sdk-test-reply-1']]);
        assert.equal(reply.delivery?.idempotency_key, 'sdk-test-reply-1');

        // Exactly one message of each was sent and arrived.
        await new Promise((r) => setTimeout(r, 1000));
        const outbound = (await mr.messages.list(a.id, { direction: 'outbound', limit: 200 }).toArray()).filter((x) => x.subject === 'lost response');
        assert.equal(outbound.length, 1, 'the lost response did not send twice');
        assert.equal((await mr.messages.list(inbox.id, { limit: 200 }).toArray()).filter((x) => x.subject === 'lost response').length, 1);
        const inA = await waitFor(async () => (await mr.messages.list(a.id, { direction: 'inbound', q: 'one reply' }).toArray()), 30_000, 'the reply');
        assert.equal(inA.length, 1);

        // 3. A GET that meets a 503 is retried; with maxRetries 0 the 503 is the caller's.
        proxy.fault = faultOnce('GET', new RegExp(`^/v1/inboxes/${inbox.id}$`), '503');
        assert.equal((await viaProxy.inboxes.get(inbox.id)).id, inbox.id);
        proxy.fault = faultOnce('GET', new RegExp(`^/v1/inboxes/${inbox.id}$`), '503');
        await assert.rejects(viaProxy.inboxes.get(inbox.id, { maxRetries: 0 }), (e: unknown) => e instanceof MailroomApiError && e.status === 503 && e.code === 'storage_unavailable');

        // 4. Creating a token is not idempotent: once its response is lost, the SDK must not repeat it.
        const before = (await mr.tokens.list().toArray()).length;
        proxy.fault = faultOnce('POST', /^\/v1\/tokens$/, 'lose-response');
        await assert.rejects(viaProxy.tokens.create({ scopes: ['inboxes:read'], name: 'lost' }), MailroomConnectionError);
        assert.equal(proxy.log.filter((l) => l.path === '/v1/tokens' && l.method === 'POST').length, 1, 'not retried');
        assert.equal((await mr.tokens.list().toArray()).length, before + 1, 'the server did create it: a retry would have made two');
      } finally {
        await proxy.close();
      }
    });

    test('errors: MailroomApiError with the problem code (not_found, insufficient_scope, unauthorized, invalid_request)', async () => {
      const nf = await mr.messages.get('msg_00000000000000000000000000').catch((e: unknown) => e);
      assert.ok(nf instanceof MailroomApiError && nf instanceof MailroomError && nf instanceof Error);
      assert.equal(nf.status, 404);
      assert.equal(nf.code, 'not_found');
      assert.match(nf.detail, /not found/);

      const readOnly = await mr.tokens.create({ scopes: ['inboxes:read'], inbox_ids: [a.id], name: 'sdk read-only' });
      assert.match(readOnly.token, /^mr_/);
      const limited = new Mailroom({ baseUrl: m.api.base, token: readOnly.token });
      const scope = await limited.messages.send(a.id, { to: b.address, subject: 'x', text: 'x' }).catch((e: unknown) => e);
      assert.ok(scope instanceof MailroomApiError);
      assert.equal(scope.status, 403);
      assert.equal(scope.code, 'insufficient_scope');
      await assert.rejects(limited.inboxes.get(b.id), (e: unknown) => e instanceof MailroomApiError && e.code === 'not_found', 'another inbox is invisible');
      assert.equal((await limited.inboxes.get(a.id)).id, a.id);
      const revoked = await mr.tokens.delete(readOnly.id);
      assert.ok(revoked.revoked_at);
      await assert.rejects(limited.inboxes.get(a.id), (e: unknown) => e instanceof MailroomApiError && e.status === 401 && e.code === 'unauthorized');

      const invalid = await mr.messages.send(a.id, { to: 'not an address', subject: 'x', text: 'x' }).catch((e: unknown) => e);
      assert.ok(invalid instanceof MailroomApiError);
      assert.equal(invalid.code, 'invalid_address');
      await assert.rejects(mr.events.list({ after: 'not-a-cursor' }), (e: unknown) => e instanceof MailroomApiError && e.code === 'invalid_request');
      // The stream throws a non-transient error instead of reconnecting forever.
      await assert.rejects(async () => { for await (const _ of mr.events.stream({ after: 'garbage' })) break; }, (e: unknown) => e instanceof MailroomApiError && e.status === 400);
      await assert.rejects(new Mailroom({ baseUrl: 'http://127.0.0.1:1', token: 'mr_x', maxRetries: 0 }).inboxes.list(), MailroomConnectionError);
    });

    test('webhooks: create through the SDK, receive a signed delivery and verify it with the returned secret; rotate, list deliveries, replay, disable, delete', async () => {
      const got: { headers: http.IncomingHttpHeaders; body: string }[] = [];
      const receiver = http.createServer(async (req, res) => {
        const chunks: Buffer[] = [];
        for await (const c of req) chunks.push(c as Buffer);
        got.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
        res.writeHead(204).end();
      });
      await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
      try {
        const inbox = await mr.inboxes.create({ username: 'sdk-hooks' });
        const hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
        const hook = await mr.webhooks.create({ url: hookUrl, description: 'sdk test', event_types: ['message.received'], inbox_ids: [inbox.id] });
        assert.match(hook.id, /^wh/);
        assert.match(hook.secret, /^whsec_/);
        assert.equal(hook.enabled, true);
        assert.deepEqual(hook.event_types, ['message.received']);
        assert.ok(!('secret' in (await mr.webhooks.get(hook.id))), 'the secret is shown only once');
        assert.ok((await mr.webhooks.list().toArray()).some((w) => w.id === hook.id));

        const sent = await mr.messages.send(a.id, { to: inbox.address, subject: 'hook me', text: 'x' });
        await waitFor(async () => got.length >= 1 || null, 30_000, 'a webhook delivery');
        const first = got[0];
        const payload = await verifyWebhook(first.headers, first.body, hook.secret);
        assert.equal(payload.type, 'message.received');
        assert.equal(payload.data.type, 'message.received');
        assert.equal(payload.data.inbox_id, inbox.id);
        assert.equal(payload.data.data.subject, 'hook me');
        assert.equal(payload.data.data.from, a.address);
        assert.ok(payload.data.message_id && payload.data.thread_id === (await mr.messages.get(payload.data.message_id)).thread_id);
        assert.notEqual(payload.data.thread_id, sent.thread_id, 'the receiver has its own thread');
        await assert.rejects(verifyWebhook(first.headers, first.body, newSecret()), WebhookVerificationError);
        await assert.rejects(verifyWebhook(first.headers, first.body.replace('hook me', 'hook you'), hook.secret), WebhookVerificationError);

        const deliveries = await waitFor(async () => {
          const d = await mr.webhooks.deliveries(hook.id, { status: 'succeeded' }).toArray();
          return d.length ? d : null;
        }, 10_000, 'the delivery marked succeeded');
        assert.equal(deliveries[0].id, first.headers['webhook-id']);
        assert.equal(deliveries[0].event_id, payload.data.id);

        // Rotation: the next delivery carries two signatures; either secret verifies it.
        const rotated = await mr.webhooks.rotateSecret(hook.id);
        assert.match(rotated.secret, /^whsec_/);
        assert.notEqual(rotated.secret, hook.secret);
        assert.ok(Date.parse(rotated.previous_secret_expires_at) > Date.now());
        await mr.messages.send(a.id, { to: inbox.address, subject: 'after rotation', text: 'x' });
        await waitFor(async () => got.length >= 2 || null, 30_000, 'a delivery after the rotation');
        const second = got[1];
        assert.equal(String(second.headers['webhook-signature']).split(' ').length, 2);
        assert.equal((await verifyWebhook(second.headers, second.body, rotated.secret)).data.data.subject, 'after rotation');
        await verifyWebhook(second.headers, second.body, hook.secret);
        await verifyWebhook(second.headers, second.body, [hook.secret, rotated.secret]);

        // Replay from before the first event: both are delivered again, with their original webhook-id.
        const { queued } = await mr.webhooks.replay(hook.id, { after: (await mr.events.list({ inbox_id: inbox.id, types: 'inbox.created' })).data[0].id });
        assert.equal(queued, 2);
        await waitFor(async () => got.length >= 4 || null, 30_000, 'the replayed deliveries');
        assert.deepEqual(got.slice(2).map((g) => g.headers['webhook-id']).sort(), [first.headers['webhook-id'], second.headers['webhook-id']].sort());
        for (const g of got.slice(2)) await verifyWebhook(g.headers, g.body, rotated.secret);

        const disabled = await mr.webhooks.update(hook.id, { enabled: false, description: 'paused' });
        assert.equal(disabled.enabled, false);
        assert.equal(disabled.description, 'paused');

        const noScope = await mr.tokens.create({ scopes: ['messages:read'] });
        await assert.rejects(new Mailroom({ baseUrl: m.api.base, token: noScope.token }).webhooks.list(), (e: unknown) => e instanceof MailroomApiError && e.code === 'insufficient_scope');
        await assert.rejects(mr.webhooks.create({ url: 'http://169.254.169.254/latest' }), (e: unknown) => e instanceof MailroomApiError && e.code === 'webhook_url_forbidden');

        await mr.webhooks.delete(hook.id);
        await assert.rejects(mr.webhooks.get(hook.id), (e: unknown) => e instanceof MailroomApiError && e.code === 'not_found');
      } finally {
        receiver.closeAllConnections();
        await new Promise((r) => receiver.close(r));
      }
    });

    test('admin resources: domains, suppressions, limits, tokens', async () => {
      const d = await mr.domains.create({ name: 'sdk-brand.example' });
      assert.equal(d.name, 'sdk-brand.example');
      assert.equal((await mr.domains.create({ name: 'sdk-brand.example' })).id, d.id);
      assert.ok((await mr.domains.list().toArray()).some((x) => x.id === d.id));
      assert.equal((await mr.domains.get('sdk-brand.example')).dkim_selector, d.dkim_selector);
      const s = await mr.suppressions.create({ address: 'gone@example.com', reason: 'manual' });
      assert.deepEqual((await mr.suppressions.list({ address: 'gone@example.com' }).toArray()).map((x) => x.id), [s.id]);
      await mr.suppressions.delete(s.id);
      const l = await mr.limits.create({ scope: 'inbox', match: a.id, max: 1000, window: 'hour' });
      assert.ok((await mr.limits.list().toArray()).some((x) => x.id === l.id));
      await mr.limits.delete(l.id);
      assert.ok((await mr.request<{ status: string }>('GET', '/healthz')).status);
    });
  });
}
