/**
 * The simulated prospects' mail world: one SMTP server on loopback that Mailroom uses as its relay
 * (MAILROOM_SMTP_RELAY_URL = `world.relayUrl`), so it receives every message Mailroom sends to any
 * outside domain, and answers as the prospects' side of the Internet would — over real SMTP, back
 * to Mailroom's inbound port:
 *
 *   interested, not_interested, question, wrong_person, unsubscribe, colleague, injection
 *       a person's reply, some (simulated) hours later: `Re:`, In-Reply-To/References, the original
 *       quoted the way Gmail quotes it, Date on the campaign clock, Message-ID at the prospect's domain
 *   out_of_office, auto_reply
 *       an RFC 3834 auto-reply (`Auto-Submitted: auto-replied`, null envelope sender) within minutes;
 *       out of office states a return date N business days after the message arrived
 *   hard_bounce    refused at RCPT: `550 5.1.1 <addr>: user unknown`
 *   async_bounce   accepted, then an RFC 3464 DSN (Status 5.1.1) to the VERP return path, from
 *                  MAILER-DAEMON@<world host>, envelope sender `<>` — for every message it receives
 *   complaint      accepted, then an ARF (RFC 5965) abuse report to the VERP return path
 *   silent         accepted, never answered
 *
 * Each persona reacts once per (address, campaign) — to the first message carrying a given
 * `X-Mailroom-Campaign` header value (or none) — unless `replyToEveryMessage`; async_bounce bounces
 * every message, as a mailbox that does not exist would. Reactions wait on ordinary timers (the
 * world is a test fixture and lives in memory); one that cannot be delivered (Mailroom down,
 * 4xx) is retried with backoff until it is accepted or the world stops; a 5xx refusal is final
 * (`world.failed`).
 */
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { simpleParser, type AddressObject } from 'mailparser';
import nodemailer from 'nodemailer';
import MailComposer from 'nodemailer/lib/mail-composer';
import { SMTPServer, type SMTPServerAddress, type SMTPServerSession } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import {
  addBusinessDays, AUTO_PERSONAS, colleagueOf, domainOfAddress, gmailAttribution, isoDay, longDate, nameOf, PERSONAS,
  personaOfAddress, quoted, referralOf, replyContent, rfc5322Date, unitOf, type Persona,
} from './personas.ts';

export { PERSONAS, makeProspects, personaOfAddress, DEFAULT_MIX, type Persona, type Prospect } from './personas.ts';

export interface MailroomTarget { host: string; port: number }

export interface WorldOptions {
  /**
   * Mailroom's inbound SMTP, where replies, DSNs and complaints go. Read at every delivery
   * attempt, so it may be changed later (`world.setMailroom`); port 0 means "not known yet":
   * reactions wait until it is set.
   */
  mailroom: MailroomTarget;
  /** The campaign clock (simulated time): Date headers, return dates, `simAt` of every record. */
  simNow: () => Date;
  /** How many real milliseconds a simulated delay takes. */
  realDelayForSim: (simMs: number) => number;
  /** Default: `personaOfAddress(address) ?? 'silent'` (the local part starts with a persona name). */
  personaOf?: (address: string) => Persona;
  /** Simulated delay before a person replies (a complaint is a person too). Default 2 h; jittered ×0.5–1.5 by address. */
  replyAfterSimMs?: number;
  /** Simulated delay before an auto-reply. Default 2 min; jittered likewise. */
  autoReplyAfterSimMs?: number;
  /** Simulated delay before an asynchronous bounce. Default 30 min; jittered likewise. */
  bounceAfterSimMs?: number;
  /** out_of_office: business days from arrival to the return date. Default 3. */
  outOfOfficeBusinessDays?: number | ((address: string) => number);
  /** React to every message, not only the first per (address, campaign). Default false. */
  replyToEveryMessage?: boolean;
  /**
   * Where auto-replies go: the author (`from`: Reply-To, else From — what Exchange and Gmail do)
   * or the envelope sender (`return_path`: the VERP address, as RFC 3834 §4 recommends). Default `from`.
   */
  autoReplyTo?: 'from' | 'return_path';
  /** The world's host name: SMTP banner, MAILER-DAEMON's domain, DSN Reporting-MTA. Default `mx.prospects.example`. */
  hostname?: string;
  /**
   * Keep every received message's bytes in `received[].raw` (default true). With false, a message's
   * bytes are dropped once nothing needs them (a DSN or an ARF report quotes them), so a long run
   * holds the records without the messages.
   */
  keepRaw?: boolean;
  /** Listening port on 127.0.0.1. Default 0 (the OS picks). */
  port?: number;
  log?: (line: string) => void;
}

/** One message as one prospect's mailbox received it (a transaction to two recipients is two records). */
export interface WorldMessage {
  /** Order of arrival, from 1. */
  seq: number;
  /** The recipient whose mailbox this is, lower-case. */
  to: string;
  persona: Persona;
  /** Date.now() when the message was accepted. */
  realAt: number;
  /** The campaign clock when it was accepted. */
  simAt: Date;
  /** Envelope sender (MAIL FROM): Mailroom's VERP address `bounces+<msg id>@<domain>`. */
  envelopeFrom: string;
  /** Every accepted recipient of the SMTP transaction. */
  envelopeTo: string[];
  messageId: string | null;
  inReplyTo: string | null;
  references: string[];
  /** The Date header. */
  date: Date | null;
  from: { address: string; name: string } | null;
  replyTo: { address: string; name: string } | null;
  subject: string | null;
  text: string;
  /** Every `X-Mailroom-*` header, by lower-case name: `x-mailroom-campaign`, `x-mailroom-step`… */
  mailroomHeaders: Record<string, string>;
  dkim: boolean;
  /** The `d=` of the first DKIM-Signature, lower-case. */
  dkimDomain: string | null;
  /** The message as received (empty once dropped: `keepRaw: false`). */
  raw: Buffer;
}

export interface WorldRefusal {
  to: string;
  persona: Persona;
  envelopeFrom: string;
  realAt: number;
  simAt: Date;
  code: number;
  response: string;
}

/** A reaction is named after the persona that produced it; `custom` is an injected text. */
export type ReactionKind = Exclude<Persona, 'silent' | 'hard_bounce'> | 'custom';

export interface WorldReaction {
  id: number;
  kind: ReactionKind;
  /** The persona of the prospect whose mailbox reacted. */
  persona: Persona;
  /** The prospect (recipient of the message answered). */
  prospect: string;
  /** The header From address (the prospect, a colleague, MAILER-DAEMON, the feedback loop). */
  from: string;
  envelopeFrom: string;
  /** Envelope recipient at Mailroom. */
  to: string;
  subject: string;
  /** Message-ID of this reaction. */
  messageId: string;
  /** Message-ID of the message it answers. */
  answers: string | null;
  /** `seq` of the WorldMessage it answers. */
  answersSeq: number;
  /** The campaign clock when it was scheduled, and when it was written (its Date header). */
  scheduledSimAt: Date;
  simAt: Date | null;
  /** Date.now() when Mailroom accepted it. */
  realAt: number | null;
  attempts: number;
  status: 'scheduled' | 'sending' | 'sent' | 'failed';
  /** The last delivery error, if any. */
  error: string | null;
  /** out_of_office: the return date (YYYY-MM-DD, UTC) and how the text writes it. */
  returnDate?: string;
  returnDateText?: string;
  /** wrong_person: the person named. */
  referral?: { name: string; address: string };
  raw: Buffer | null;
}

export interface InjectOptions {
  /** The received message to answer: a WorldMessage, its Message-ID, or its `seq`. */
  message: WorldMessage | string | number;
  /** Write what this persona writes (default: the recipient's persona, unless `text` is given). */
  persona?: Persona;
  /** The reply's text (replaces the persona's); with no persona, the kind is `custom`. */
  text?: string;
  html?: string;
  subject?: string;
  /** Header and envelope From. Default: the recipient of the message answered. */
  from?: string;
  headers?: Record<string, string>;
}

export interface WorldCounts { received: number; reactions: number; refused: number }

export interface WorldSummary {
  personas: Record<Persona, WorldCounts>;
  total: WorldCounts & { pending: number; failed: number };
}

export interface World {
  /** `smtp://127.0.0.1:<port>`: Mailroom's MAILROOM_SMTP_RELAY_URL. */
  relayUrl: string;
  port: number;
  hostname: string;
  received: WorldMessage[];
  refused: WorldRefusal[];
  /** Reactions Mailroom has accepted, in the order it accepted them. */
  sent: WorldReaction[];
  /** Reactions Mailroom refused with a 5xx (not retried). */
  failed: WorldReaction[];
  /** Every reaction, whatever its status. */
  reactions: WorldReaction[];
  personaOf(address: string): Persona;
  /** Where reactions are delivered from now on (Mailroom restarted on another port). */
  setMailroom(target: MailroomTarget): void;
  /** Sends a reply to a received message now; resolves once Mailroom accepted it (retrying meanwhile). */
  inject(opts: InjectOptions): Promise<WorldReaction>;
  /** Resolves when no reaction is scheduled or being delivered. */
  settled(): Promise<void>;
  summary(): WorldSummary;
  stop(): Promise<void>;
}

// smtp-server waits 100 ms before greeting a connection (an early-talker check). Mailroom's pooled
// relay transport reconnects often enough for that to weigh on a campaign, and a relay such as
// Postfix greets at once; so the world's server greets at once. Only connections of a server marked
// with NO_GREETING_DELAY are changed: Mailroom's own smtp-server in the same process keeps its delay.
const NO_GREETING_DELAY = Symbol.for('mailroom.world.noGreetingDelay');
type ConnectionInternals = { init(): void; _setListeners(cb: () => void): void; connectionReady(): void; _server: Record<symbol, unknown> };
const connectionProto = SMTPConnection.prototype as unknown as ConnectionInternals & Record<symbol, unknown>;
if (!connectionProto[NO_GREETING_DELAY]) {
  const init = connectionProto.init;
  connectionProto.init = function (this: ConnectionInternals) {
    if (!this._server?.[NO_GREETING_DELAY]) return init.call(this);
    this._setListeners(() => this.connectionReady());
  };
  connectionProto[NO_GREETING_DELAY] = true;
}

const SIM_HOUR = 3_600_000;
const EMPTY = Buffer.alloc(0);
const RETRY_BASE_MS = 100;
const RETRY_MAX_MS = 2_000;

const addressText = (a: { address: string; name: string }) => (a.name ? `"${a.name.replace(/["\\]/g, '')}" <${a.address}>` : a.address);

function firstAddress(x: AddressObject | AddressObject[] | undefined): { address: string; name: string } | null {
  const list = Array.isArray(x) ? x.flatMap((a) => a.value) : x?.value ?? [];
  const a = list.find((v) => v.address);
  return a ? { address: a.address!.toLowerCase(), name: a.name ?? '' } : null;
}

/** The header section of a raw message, with CRLF line ends. */
function headerSection(raw: Buffer): string {
  const text = raw.toString('latin1');
  const end = text.search(/\r?\n\r?\n/);
  return (end < 0 ? text : text.slice(0, end)).replace(/\r?\n/g, '\r\n');
}

/** The header fields of a raw message, unfolded: [name, value] in order. */
const headerFields = (raw: Buffer): [string, string][] =>
  headerSection(raw).replace(/\r\n[ \t]+/g, ' ').split('\r\n').flatMap((line) => {
    const i = line.indexOf(':');
    return i > 0 ? [[line.slice(0, i).trim(), line.slice(i + 1).trim()] as [string, string]] : [];
  });

const crlf = (lines: string[]) => Buffer.from(`${lines.join('\r\n')}\r\n`, 'latin1');
const newMessageId = (domain: string) => `<${Date.now().toString(36)}.${randomBytes(8).toString('hex')}@${domain}>`;

interface SmtpError extends Error { responseCode?: number; response?: string; code?: string }

export async function startWorld(opts: WorldOptions): Promise<World> {
  const hostname = opts.hostname ?? 'mx.prospects.example';
  const personaOf = opts.personaOf ?? ((a: string) => personaOfAddress(a) ?? 'silent');
  const replyAfter = opts.replyAfterSimMs ?? 2 * SIM_HOUR;
  const autoAfter = opts.autoReplyAfterSimMs ?? 2 * 60_000;
  const bounceAfter = opts.bounceAfterSimMs ?? SIM_HOUR / 2;
  const oooDays = (a: string) => (typeof opts.outOfOfficeBusinessDays === 'function' ? opts.outOfOfficeBusinessDays(a) : opts.outOfOfficeBusinessDays ?? 3);
  const log = opts.log ?? (() => {});
  let target: MailroomTarget = opts.mailroom;

  const received: WorldMessage[] = [];
  const refused: WorldRefusal[] = [];
  const sent: WorldReaction[] = [];
  const failed: WorldReaction[] = [];
  const reactions: WorldReaction[] = [];
  /** (address, campaign) pairs that have had their reaction. */
  const reacted = new Set<string>();
  /** Every timer the world runs, with what to do if the world stops first. */
  const timers = new Map<NodeJS.Timeout, () => void>();
  let pending = 0;
  let stopped = false;
  let settleWaiters: (() => void)[] = [];
  let seq = 0;
  let reactionSeq = 0;

  const wait = (ms: number) => new Promise<void>((resolve) => {
    const t = setTimeout(() => { timers.delete(t); resolve(); }, Math.max(0, ms));
    timers.set(t, resolve);
  });
  const done = () => {
    pending--;
    if (pending === 0) { const w = settleWaiters; settleWaiters = []; for (const f of w) f(); }
  };
  const jittered = (simMs: number, address: string, salt: string) => simMs * (0.5 + unitOf(`${salt}:${address}`));

  // ---- receiving ----

  const server = new SMTPServer({
    name: hostname,
    banner: 'simulated prospects mail world',
    size: 50 * 1024 * 1024,
    authOptional: true,
    allowInsecureAuth: true,
    authMethods: ['PLAIN', 'LOGIN'],
    hideSTARTTLS: true,
    disabledCommands: ['STARTTLS'],
    disableReverseLookup: true,
    maxClients: 10_000,
    // Mailroom's pooled relay connections stay open; at stop they get a 421 after this long.
    closeTimeout: 500,
    logger: false,
    onAuth(auth, _session, cb) {
      cb(null, { user: auth.username ?? 'relay' });
    },
    onRcptTo(address: SMTPServerAddress, session: SMTPServerSession, cb) {
      const to = address.address.toLowerCase();
      const persona = personaOf(to);
      if (persona === 'hard_bounce') {
        const response = `5.1.1 <${address.address}>: user unknown`;
        refused.push({ to, persona, envelopeFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', realAt: Date.now(), simAt: opts.simNow(), code: 550, response: `550 ${response}` });
        log(`refused  ${to} (hard_bounce): 550 ${response}`);
        return cb(Object.assign(new Error(response), { responseCode: 550 }));
      }
      cb();
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('error', (err) => cb(err));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks);
        void record(raw, session).then(() => cb(null, '2.0.0 Ok: delivered'), (err) => cb(err as Error));
      });
    },
  });
  (server as unknown as Record<symbol, unknown>)[NO_GREETING_DELAY] = true;
  server.on('error', (err) => log(`smtp server error: ${(err as Error).message}`));

  async function record(raw: Buffer, session: SMTPServerSession): Promise<void> {
    const realAt = Date.now();
    const simAt = opts.simNow();
    const envelopeFrom = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
    const envelopeTo = session.envelope.rcptTo.map((r) => r.address.toLowerCase());
    const fields = headerFields(raw);
    const mailroomHeaders: Record<string, string> = {};
    for (const [name, value] of fields) if (/^x-mailroom-/i.test(name)) mailroomHeaders[name.toLowerCase()] = value;
    const dkimField = fields.find(([n]) => n.toLowerCase() === 'dkim-signature');
    const base = {
      realAt, simAt, envelopeFrom, envelopeTo, mailroomHeaders, raw,
      dkim: Boolean(dkimField), dkimDomain: dkimField ? /(?:^|;)\s*d=([^;\s]+)/i.exec(dkimField[1])?.[1]?.toLowerCase() ?? null : null,
    };
    let parsed: Pick<WorldMessage, 'messageId' | 'inReplyTo' | 'references' | 'date' | 'from' | 'replyTo' | 'subject' | 'text'>;
    try {
      const p = await simpleParser(raw, { skipImageLinks: true, skipTextToHtml: true });
      parsed = {
        messageId: p.messageId ?? null,
        inReplyTo: p.inReplyTo ?? null,
        references: typeof p.references === 'string' ? [p.references] : p.references ?? [],
        date: p.date ?? null,
        from: firstAddress(p.from),
        replyTo: firstAddress(p.replyTo),
        subject: p.subject ?? null,
        text: p.text ?? '',
      };
    } catch (err) {
      log(`could not parse a message to ${envelopeTo.join(', ')}: ${(err as Error).message}`);
      const h = (n: string) => fields.find(([k]) => k.toLowerCase() === n)?.[1] ?? null;
      parsed = { messageId: h('message-id'), inReplyTo: h('in-reply-to'), references: [], date: null, from: null, replyTo: null, subject: h('subject'), text: '' };
    }
    for (const to of envelopeTo) {
      const msg: WorldMessage = { seq: ++seq, to, persona: personaOf(to), ...base, ...parsed };
      received.push(msg);
      log(`received ${to} (${msg.persona})${msg.mailroomHeaders['x-mailroom-step'] ? ` step ${msg.mailroomHeaders['x-mailroom-step']}` : ''}: ${msg.subject ?? ''}`);
      const reportPending = react(msg);
      if (opts.keepRaw === false && !reportPending) msg.raw = EMPTY;
    }
  }

  // ---- reacting ----

  /** Schedules the reaction to `msg`, if any; true when it will quote the message's bytes (DSN, ARF). */
  function react(msg: WorldMessage): boolean {
    const p = msg.persona;
    if (p === 'silent' || p === 'hard_bounce' || stopped) return false;
    const key = `${msg.to}\n${msg.mailroomHeaders['x-mailroom-campaign'] ?? ''}`;
    // A mailbox that does not exist bounces everything; everyone else answers once per campaign.
    if (p !== 'async_bounce' && !opts.replyToEveryMessage) {
      if (reacted.has(key)) return false;
      reacted.add(key);
    }
    const delay = p === 'async_bounce' ? jittered(bounceAfter, msg.to, 'bounce')
      : (AUTO_PERSONAS as readonly string[]).includes(p) ? jittered(autoAfter, msg.to, 'auto')
        : jittered(replyAfter, msg.to, 'reply');
    const r = newReaction(msg, p, msg.simAt);
    pending++;
    const t = setTimeout(() => {
      timers.delete(t);
      void deliver(r, () => compose(r, msg, {})).finally(() => {
        if (opts.keepRaw === false) msg.raw = EMPTY;
        done();
      });
    }, Math.max(0, opts.realDelayForSim(delay)));
    timers.set(t, () => {});
    return p === 'async_bounce' || p === 'complaint';
  }

  /** A new reaction to `msg`; an out-of-office one is back N business days after `absentFrom`. */
  function newReaction(msg: WorldMessage, kind: ReactionKind, absentFrom: Date): WorldReaction {
    const r: WorldReaction = {
      id: ++reactionSeq, kind, persona: msg.persona, prospect: msg.to, from: '', envelopeFrom: '', to: '', subject: '', messageId: '',
      answers: msg.messageId, answersSeq: msg.seq, scheduledSimAt: opts.simNow(), simAt: null, realAt: null, attempts: 0,
      status: 'scheduled', error: null, raw: null,
    };
    if (kind === 'out_of_office') {
      const back = addBusinessDays(absentFrom, oooDays(msg.to));
      r.returnDate = isoDay(back);
      r.returnDateText = longDate(back);
    }
    if (kind === 'wrong_person') r.referral = referralOf(msg.to);
    reactions.push(r);
    return r;
  }

  /** Fills in the reaction's envelope and headers and returns its bytes (written at the current campaign time). */
  async function compose(r: WorldReaction, msg: WorldMessage, custom: Omit<InjectOptions, 'message' | 'persona'>): Promise<Buffer> {
    const now = opts.simNow();
    r.simAt = now;
    const domain = domainOfAddress(msg.to);
    if (r.kind === 'async_bounce') return dsn(r, msg, now);
    if (r.kind === 'complaint') return arf(r, msg, now);

    const author = r.kind === 'colleague' && !custom.from ? colleagueOf(msg.to) : { address: (custom.from ?? msg.to).toLowerCase(), name: nameOf(custom.from ?? msg.to).full };
    const content = r.kind === 'custom' ? null : replyContent(r.kind, { address: msg.to, signer: nameOf(msg.to).first, subject: msg.subject ?? '', returnDate: r.returnDateText });
    const isAuto = r.kind === 'out_of_office' || r.kind === 'auto_reply';
    const answerTo = isAuto && opts.autoReplyTo === 'return_path' && msg.envelopeFrom
      ? { address: msg.envelopeFrom, name: '' }
      : msg.replyTo ?? msg.from ?? (msg.envelopeFrom ? { address: msg.envelopeFrom, name: '' } : null);
    if (!answerTo) throw Object.assign(new Error('the message has no address to answer'), { permanent: true });
    const subject = custom.subject ?? content?.subject ?? (/^re:/i.test(msg.subject ?? '') ? msg.subject! : `Re: ${msg.subject ?? ''}`.trim());
    let text = custom.text ?? content?.text ?? '';
    const quote = custom.text !== undefined ? true : content?.quote ?? true;
    // Attributed to the time it arrived on the campaign clock: the original's Date header is
    // Mailroom's real clock, which would date the quoted message after the reply.
    if (quote && msg.text) text = `${text.replace(/\n*$/, '\n')}\n${quoted(msg.text, gmailAttribution(msg.simAt, msg.from?.name || null, msg.from?.address ?? null))}`;
    const html = custom.html ?? (custom.text === undefined ? content?.html : undefined);
    r.from = author.address;
    // Auto-replies carry the null reverse-path (RFC 3834 §3.3), so nothing answers them in turn.
    r.envelopeFrom = isAuto ? '' : author.address;
    r.to = answerTo.address.toLowerCase();
    r.subject = subject;
    r.messageId = newMessageId(domainOfAddress(author.address) || domain);
    const references = [...msg.references, ...(msg.messageId ? [msg.messageId] : [])];
    const mail = new MailComposer({
      from: addressText(author),
      to: addressText(answerTo),
      cc: r.kind === 'colleague' ? msg.to : undefined,
      subject,
      text,
      html,
      date: now,
      messageId: r.messageId,
      inReplyTo: msg.messageId ?? undefined,
      references: references.length ? references : undefined,
      headers: { ...content?.headers, ...custom.headers },
    });
    return mail.compile().build();
  }

  function dsn(r: WorldReaction, msg: WorldMessage, now: Date): Buffer {
    if (!msg.envelopeFrom) throw Object.assign(new Error('no bounce for a message with the null sender'), { permanent: true });
    const boundary = `dsn-${randomBytes(8).toString('hex')}`;
    const diagnostic = `550 5.1.1 <${msg.to}>: Recipient address rejected: User unknown in virtual mailbox table`;
    r.from = `mailer-daemon@${hostname}`;
    r.envelopeFrom = '';
    r.to = msg.envelopeFrom.toLowerCase();
    r.subject = 'Undelivered Mail Returned to Sender';
    r.messageId = newMessageId(hostname);
    return crlf([
      `From: Mail Delivery System <MAILER-DAEMON@${hostname}>`,
      `To: ${msg.envelopeFrom}`,
      `Subject: ${r.subject}`,
      `Date: ${rfc5322Date(now)}`,
      `Message-ID: ${r.messageId}`,
      'Auto-Submitted: auto-replied',
      'MIME-Version: 1.0',
      `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
      '',
      'This is a MIME-encapsulated message.',
      '',
      `--${boundary}`,
      'Content-Description: Notification',
      'Content-Type: text/plain; charset=us-ascii',
      '',
      `This is the mail system at host ${hostname}.`,
      '',
      "I'm sorry to have to inform you that your message could not",
      'be delivered to one or more recipients.',
      '',
      `<${msg.to}>: host mailstore.${domainOfAddress(msg.to)} said: ${diagnostic}`,
      '',
      `--${boundary}`,
      'Content-Description: Delivery report',
      'Content-Type: message/delivery-status',
      '',
      `Reporting-MTA: dns; ${hostname}`,
      `Arrival-Date: ${rfc5322Date(msg.simAt)}`,
      '',
      `Final-Recipient: rfc822; ${msg.to}`,
      `Original-Recipient: rfc822;${msg.to}`,
      'Action: failed',
      'Status: 5.1.1',
      `Remote-MTA: dns; mailstore.${domainOfAddress(msg.to)}`,
      `Diagnostic-Code: smtp; ${diagnostic}`,
      '',
      `--${boundary}`,
      'Content-Description: Undelivered Message Headers',
      'Content-Type: text/rfc822-headers',
      '',
      headerSection(msg.raw),
      '',
      `--${boundary}--`,
    ]);
  }

  function arf(r: WorldReaction, msg: WorldMessage, now: Date): Buffer {
    const returnPath = msg.envelopeFrom || msg.replyTo?.address || msg.from?.address;
    if (!returnPath) throw Object.assign(new Error('the message has no address to report to'), { permanent: true });
    const boundary = `arf-${randomBytes(8).toString('hex')}`;
    const original = msg.raw.toString('latin1').replace(/\r?\n/g, '\r\n').replace(/(\r\n)*$/, '');
    r.from = `fbl@${hostname}`;
    r.envelopeFrom = '';
    r.to = returnPath.toLowerCase();
    r.subject = `FW: ${msg.subject ?? ''}`.trim();
    r.messageId = newMessageId(hostname);
    return crlf([
      `From: Feedback Loop <fbl@${hostname}>`,
      `To: ${returnPath}`,
      `Subject: ${r.subject}`,
      `Date: ${rfc5322Date(now)}`,
      `Message-ID: ${r.messageId}`,
      'MIME-Version: 1.0',
      `Content-Type: multipart/report; report-type=feedback-report; boundary="${boundary}"`,
      '',
      `--${boundary}`,
      'Content-Type: text/plain; charset=us-ascii',
      '',
      `This is an email abuse report for a message received from IP 127.0.0.1 on ${rfc5322Date(msg.simAt)}.`,
      `The recipient ${msg.to} marked it as spam.`,
      '',
      `--${boundary}`,
      'Content-Type: message/feedback-report',
      '',
      'Feedback-Type: abuse',
      'User-Agent: MailroomWorld/1.0',
      'Version: 1',
      ...(msg.envelopeFrom ? [`Original-Mail-From: <${msg.envelopeFrom}>`] : []),
      `Original-Rcpt-To: <${msg.to}>`,
      `Arrival-Date: ${rfc5322Date(msg.simAt)}`,
      `Reported-Domain: ${domainOfAddress(msg.from?.address ?? msg.envelopeFrom)}`,
      'Source-IP: 127.0.0.1',
      '',
      `--${boundary}`,
      'Content-Type: message/rfc822',
      'Content-Disposition: inline',
      '',
      original,
      '',
      `--${boundary}--`,
    ]);
  }

  /** Composes and delivers `r` to Mailroom, retrying with backoff until accepted, refused for good, or the world stops. */
  async function deliver(r: WorldReaction, build: () => Promise<Buffer> | Buffer): Promise<void> {
    try {
      r.raw = await build();
    } catch (err) {
      r.status = 'failed';
      r.error = (err as Error).message;
      failed.push(r);
      log(`failed   ${r.kind} for ${r.prospect}: ${r.error}`);
      return;
    }
    r.status = 'sending';
    for (let backoff = RETRY_BASE_MS; !stopped; backoff = Math.min(backoff * 2, RETRY_MAX_MS)) {
      const { host, port } = target;
      if (port > 0) {
        r.attempts++;
        const t = nodemailer.createTransport({
          host, port, secure: false, ignoreTLS: true, name: hostname,
          connectionTimeout: 5_000, greetingTimeout: 5_000, socketTimeout: 30_000,
        });
        try {
          await t.sendMail({ envelope: { from: r.envelopeFrom, to: [r.to] }, raw: r.raw });
          r.status = 'sent';
          r.realAt = Date.now();
          r.error = null;
          sent.push(r);
          log(`sent     ${r.kind} ${r.from} → ${r.to}${r.returnDate ? ` (back ${r.returnDate})` : ''}`);
          return;
        } catch (error) {
          const err = error as SmtpError;
          r.error = err.response ?? err.message;
          if (err.responseCode !== undefined && err.responseCode >= 500) {
            r.status = 'failed';
            failed.push(r);
            log(`failed   ${r.kind} ${r.from} → ${r.to}: ${r.error}`);
            return;
          }
        } finally {
          t.close();
        }
      }
      await wait(backoff);
    }
  }

  function findMessage(ref: InjectOptions['message']): WorldMessage {
    const m = typeof ref === 'object' ? ref
      : typeof ref === 'number' ? received.find((x) => x.seq === ref)
        : received.find((x) => x.messageId === ref || x.messageId === `<${ref.replace(/^<|>$/g, '')}>`);
    if (!m) throw new Error(`the world received no message ${typeof ref === 'object' ? ref.seq : ref}`);
    return m;
  }

  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => { server.server.off('error', reject); resolve(); });
  });
  const port = (server.server.address() as AddressInfo).port;
  log(`world listening on 127.0.0.1:${port}`);

  const emptyCounts = (): Record<Persona, WorldCounts> => Object.fromEntries(PERSONAS.map((p) => [p, { received: 0, reactions: 0, refused: 0 }])) as Record<Persona, WorldCounts>;

  return {
    relayUrl: `smtp://127.0.0.1:${port}`,
    port,
    hostname,
    received,
    refused,
    sent,
    failed,
    reactions,
    personaOf,
    setMailroom(t) { target = t; },
    async inject(o) {
      if (stopped) throw new Error('the world is stopped');
      const msg = findMessage(o.message);
      const persona = o.persona ?? (o.text === undefined ? msg.persona : undefined);
      if (persona === 'silent' || persona === 'hard_bounce') throw new Error(`a ${persona} prospect writes nothing: give a text or another persona`);
      const r = newReaction(msg, persona ?? 'custom', opts.simNow());
      pending++;
      try {
        await deliver(r, () => compose(r, msg, o));
      } finally {
        done();
      }
      if (r.status !== 'sent') throw new Error(`the injected ${r.kind} was not delivered: ${r.error ?? 'the world stopped'}`);
      return r;
    },
    settled() {
      if (pending === 0 || stopped) return Promise.resolve();
      return new Promise<void>((resolve) => settleWaiters.push(resolve));
    },
    summary() {
      const personas = emptyCounts();
      for (const m of received) personas[m.persona].received++;
      for (const r of refused) personas[r.persona].refused++;
      for (const r of sent) personas[r.persona].reactions++;
      return {
        personas,
        total: { received: received.length, reactions: sent.length, refused: refused.length, pending, failed: failed.length },
      };
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      for (const [t, cancel] of timers) { clearTimeout(t); cancel(); }
      timers.clear();
      const w = settleWaiters;
      settleWaiters = [];
      for (const f of w) f();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
