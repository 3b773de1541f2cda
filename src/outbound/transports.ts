import type { Readable } from 'node:stream';
import nodemailer, { type Transporter } from 'nodemailer';
import type { Config } from '../config/config.ts';
import { isNoData, type Resolver } from '../dns/resolver.ts';
import { newId } from '../ids.ts';
import type { Inboxes } from '../inboxes/inboxes.ts';
import type { Acceptor } from '../inbound/accept.ts';
import { classifyRecipient } from '../inbound/recipient-policy.ts';
import { receivedHeader } from '../inbound/trace.ts';
import type { Logger } from '../log.ts';
import { addressKey, domainOf } from './addresses.ts';

/**
 * The three ways out, chosen per recipient by configuration:
 *   local — a recipient on one of Mailroom's own domains goes straight into that inbox through the
 *           inbound acceptor (the same durability, parsing and threading as mail from outside);
 *   relay — everything else goes to MAILROOM_SMTP_RELAY_URL when it is set (pooled connections);
 *   mx    — otherwise to the recipient domain's MX hosts, in preference order, with opportunistic
 *           STARTTLS and a pooled connection per host.
 * Each attempt reports, per recipient, sent / bounced (5xx) / deferred (4xx, network, DNS failure).
 */
export type TransportName = 'local' | 'relay' | 'mx';

export interface Attempt {
  address: string;
  outcome: 'sent' | 'bounced' | 'deferred';
  code: number | null;
  /** Enhanced status code (RFC 3463) when the reply carried one. */
  status: string | null;
  response: string;
  transport: TransportName;
  /**
   * The whole message went to the server and its reply to the end of data never came (the
   * connection dropped or timed out): the server may have accepted it. Deferred and retried like
   * any failure without a reply, so a retry may deliver a second copy — the duplicate risk RFC 5321
   * §4.1.5 leaves to the sender (the reply lost after the final dot). Counted, not hidden.
   */
  uncertain?: true;
}

export interface OutgoingMessage {
  envelopeFrom: string;
  recipients: string[];
  raw: Buffer;
}

interface SmtpError extends Error { code?: string; responseCode?: number; response?: string; rejectedErrors?: SmtpError[]; recipient?: string }

/**
 * How far a message's bytes went: nodemailer reports a dropped connection the same way before MAIL
 * FROM and after the final dot, and only the second may have delivered the message. Its message
 * stream tells them apart — read only once the server said 354, ended once all of it was handed
 * to the connection — so a `stream` plugin keeps a reference to it for the caller of sendMail.
 * (nodemailer's pool reads the same stream's `readableDidRead` to decide whether a message may be
 * retried on another connection.)
 */
interface Transmission { stream: Readable | null }

/** nodemailer's `stream` plugin step, as far as it is used here (its types do not describe it). */
type StreamPlugin = (mail: { data: { transmission?: Transmission }; message: { processFunc(f: (input: Readable) => Readable): void } }, done: (err?: Error) => void) => void;

const trackTransmission: StreamPlugin = (mail, done) => {
  const t = mail.data.transmission;
  if (t) mail.message.processFunc((input) => { t.stream = input; return input; });
  done();
};

function withTransmissionTracking(t: Transporter): Transporter {
  t.use('stream', trackTransmission as never);
  return t;
}

const enhanced = (text: string): string | null => /\b([245]\.\d{1,3}\.\d{1,3})\b/.exec(text)?.[1] ?? null;
const oneLine = (s: string | undefined, fallback: string) => (s ?? fallback).replace(/\s+/g, ' ').trim().slice(0, 500);

function fromReply(address: string, code: number | null, text: string, transport: TransportName): Attempt {
  // Only a 5xx reply is permanent; no reply at all (timeout, reset) is always worth another try.
  const outcome = code !== null && code >= 500 ? 'bounced' : code !== null && code < 300 ? 'sent' : 'deferred';
  return { address, outcome, code, status: enhanced(text), response: text, transport };
}

export class Transports {
  readonly #config: Config;
  readonly #resolver: Resolver;
  readonly #inboxes: Inboxes;
  readonly #acceptor: Acceptor;
  readonly #log: Logger;
  #relay: Transporter | null = null;
  /** One pooled transporter per MX address: connections to a destination are reused. */
  readonly #mx = new Map<string, Transporter>();

  constructor(deps: { config: Config; resolver: Resolver; inboxes: Inboxes; acceptor: Acceptor; log: Logger }) {
    this.#config = deps.config;
    this.#resolver = deps.resolver;
    this.#inboxes = deps.inboxes;
    this.#acceptor = deps.acceptor;
    this.#log = deps.log;
  }

  routeOf(address: string): TransportName {
    if (this.#config.domains.includes(domainOf(address))) return 'local';
    return this.#config.outbound.relayUrl ? 'relay' : 'mx';
  }

  async deliver(msg: OutgoingMessage): Promise<Attempt[]> {
    const groups = new Map<string, string[]>();
    for (const r of msg.recipients) {
      const route = this.routeOf(r);
      // Direct MX needs one transaction per destination domain; local and relay take them all at once.
      const key = route === 'mx' ? `mx:${domainOf(r)}` : route;
      groups.set(key, [...(groups.get(key) ?? []), r]);
    }
    const results = await Promise.all([...groups].map(([key, rcpts]) => {
      if (key === 'local') return this.#local(msg, rcpts);
      if (key === 'relay') return this.#smtp(this.#relayTransport(), msg, rcpts, 'relay');
      return this.#direct(msg, key.slice(3), rcpts);
    }));
    return results.flat();
  }

  async #local(msg: OutgoingMessage, rcpts: string[]): Promise<Attempt[]> {
    const attempts: Attempt[] = [];
    const deliveries: { id: string; inbox_id: string; rcpt_to: string }[] = [];
    const seen = new Set<string>();
    for (const r of rcpts) {
      const cls = classifyRecipient(r, this.#config.domains);
      const inboxId = cls.kind === 'local' ? await this.#inboxes.idForAddress(cls.username, cls.domain) : null;
      if (!inboxId) {
        attempts.push(fromReply(r, 550, `550 5.1.1 <${r}>: no such mailbox here`, 'local'));
        continue;
      }
      if (!seen.has(inboxId)) deliveries.push({ id: newId('msg'), inbox_id: inboxId, rcpt_to: r });
      seen.add(inboxId);
      attempts.push(fromReply(r, 250, '250 2.0.0 delivered locally', 'local'));
    }
    if (!deliveries.length) return attempts;
    const id = newId('rcv');
    const now = new Date();
    const trace = receivedHeader({
      helo: this.#config.hostname, remoteAddress: '127.0.0.1', clientHostname: 'localhost', hostname: this.#config.hostname,
      tls: false, esmtp: true, receiptId: id, recipients: deliveries.map((d) => d.rcpt_to), date: now,
    });
    try {
      await this.#acceptor.accept(
        { id, mail_from: msg.envelopeFrom, helo: this.#config.hostname, remote_address: '127.0.0.1', tls: false, received_at: now.toISOString(), trace_size: trace.length, deliveries },
        Buffer.concat([trace, msg.raw]),
      );
      return attempts.map((a) => (a.outcome === 'sent' ? { ...a, response: `250 2.0.0 delivered locally as ${id}` } : a));
    } catch (err) {
      this.#log.warn({ err }, 'local delivery failed; will retry');
      return attempts.map((a) => (a.outcome === 'sent' ? fromReply(a.address, 451, `451 4.3.0 local delivery failed: ${(err as Error).message}`, 'local') : a));
    }
  }

  #relayTransport(): Transporter {
    if (!this.#relay) {
      const url = new URL(this.#config.outbound.relayUrl!);
      url.searchParams.set('pool', 'true');
      this.#relay = withTransmissionTracking(nodemailer.createTransport(url.toString(), { name: this.#config.hostname } as never));
    }
    return this.#relay;
  }

  /** One SMTP transaction for `rcpts` through `t`; per-recipient results from the RCPT and DATA replies. */
  async #smtp(t: Transporter, msg: OutgoingMessage, rcpts: string[], transport: TransportName): Promise<Attempt[]> {
    const transmission: Transmission = { stream: null };
    try {
      const info = await t.sendMail({ envelope: { from: msg.envelopeFrom, to: rcpts }, raw: msg.raw, transmission } as never);
      const rejected = new Map(((info as { rejectedErrors?: SmtpError[] }).rejectedErrors ?? []).map((e) => [addressKey(e.recipient ?? ''), e]));
      return rcpts.map((r) => {
        const e = rejected.get(addressKey(r));
        if (e) return fromReply(r, e.responseCode ?? null, oneLine(e.response, e.message), transport);
        return fromReply(r, 250, oneLine(info.response, '250 ok'), transport);
      });
    } catch (error) {
      const err = error as SmtpError;
      // Every recipient refused at RCPT: each has its own reply.
      if (err.rejectedErrors?.length) {
        const byRcpt = new Map(err.rejectedErrors.map((e) => [addressKey(e.recipient ?? ''), e]));
        return rcpts.map((r) => {
          const e = byRcpt.get(addressKey(r));
          return fromReply(r, e?.responseCode ?? err.responseCode ?? null, oneLine(e?.response ?? err.response, err.message), transport);
        });
      }
      if (err.responseCode === undefined && transmission.stream?.readableEnded) {
        const text = `no reply after the message was transmitted (${err.code ?? 'error'}: ${oneLine(err.message, 'connection lost')}); it may have been delivered`;
        return rcpts.map((r) => ({ ...fromReply(r, null, text, transport), uncertain: true as const }));
      }
      return rcpts.map((r) => fromReply(r, err.responseCode ?? null, oneLine(err.response, `${err.code ?? 'error'}: ${err.message}`), transport));
    }
  }

  async #direct(msg: OutgoingMessage, domain: string, rcpts: string[]): Promise<Attempt[]> {
    const fail = (code: number | null, text: string) => rcpts.map((r) => fromReply(r, code, text, 'mx'));
    let hosts: string[];
    try {
      const mx = await this.#resolver.resolveMx(domain);
      // RFC 7505 null MX: the domain says it accepts no mail at all.
      if (mx.length === 1 && (mx[0].exchange === '' || mx[0].exchange === '.')) return fail(556, `556 5.1.10 ${domain} does not accept mail (null MX)`);
      hosts = mx.sort((a, b) => a.priority - b.priority).map((m) => m.exchange);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'ENOTFOUND') return fail(550, `550 5.1.2 ${domain}: no such domain`);
      // No MX records: the domain itself is the implicit MX (RFC 5321 §5.1).
      if (isNoData(err)) hosts = [domain];
      else return fail(null, `451 4.4.3 DNS lookup of MX for ${domain} failed: ${code ?? (err as Error).message}`);
    }
    let last = `451 4.4.1 no MX host of ${domain} could be reached`;
    for (const host of hosts) {
      let addrs: string[];
      try {
        addrs = await this.#resolver.resolve4(host);
      } catch (err) {
        last = `451 4.4.3 ${host}: address lookup failed (${(err as { code?: string }).code ?? 'error'})`;
        continue;
      }
      for (const ip of addrs) {
        const results = await this.#smtp(this.#mxTransport(host, ip), msg, rcpts, 'mx');
        // A reply from the server (accepted or refused) ends the search; no reply means try the next
        // host — unless the message was already transmitted: this host may have it, and handing it
        // to the next one now would make the duplicate certain rather than possible.
        if (results.some((r) => r.code !== null || r.uncertain)) return results;
        last = results[0]?.response ?? last;
      }
    }
    return fail(null, last);
  }

  #mxTransport(host: string, ip: string): Transporter {
    const key = `${host}|${ip}`;
    let t = this.#mx.get(key);
    if (!t) {
      t = withTransmissionTracking(nodemailer.createTransport({
        host: ip,
        port: this.#config.outbound.mxPort,
        secure: false,
        name: this.#config.hostname,
        pool: true,
        maxConnections: 2,
        connectionTimeout: 30_000,
        greetingTimeout: 30_000,
        socketTimeout: 120_000,
        // Opportunistic STARTTLS, as MTAs do between MX hosts (RFC 3207): encrypt when offered, and do
        // not refuse a self-signed or mismatched certificate — that would only push the mail to plaintext.
        tls: { servername: host, rejectUnauthorized: false },
      } as never));
      this.#mx.set(key, t);
    }
    return t;
  }

  close(): void {
    this.#relay?.close();
    for (const t of this.#mx.values()) t.close();
    this.#mx.clear();
  }
}
