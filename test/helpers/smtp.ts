import net from 'node:net';
import nodemailer, { type SendMailOptions } from 'nodemailer';

/**
 * A raw SMTP client over a real socket, for tests that need byte-level control (relay tricks,
 * smuggling sequences, exact DATA bytes). nodemailer is used where a normal client is wanted.
 */
export interface Reply {
  code: number;
  text: string;
}

export class SmtpClient {
  readonly socket: net.Socket;
  #buffer = '';
  #waiters: ((r: Reply) => void)[] = [];
  #replies: Reply[] = [];
  #closed = false;
  greeting!: Reply;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => this.#onData(d));
    socket.on('close', () => {
      this.#closed = true;
      for (const w of this.#waiters.splice(0)) w({ code: 0, text: 'connection closed' });
    });
    socket.on('error', () => {});
  }

  static async connect(port: number, host = '127.0.0.1'): Promise<SmtpClient> {
    const socket = net.connect(port, host);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const c = new SmtpClient(socket);
    c.greeting = await c.read();
    return c;
  }

  get closed(): boolean {
    return this.#closed;
  }

  #onData(d: string): void {
    this.#buffer += d;
    // A reply is complete at a line "NNN text" (space, not dash, after the code).
    for (;;) {
      const m = /^(?:\d{3}-[^\n]*\n)*(\d{3})(?: [^\n]*)?\n/.exec(this.#buffer);
      if (!m) break;
      const block = m[0];
      this.#buffer = this.#buffer.slice(block.length);
      const reply = { code: Number(m[1]), text: block.replace(/\r/g, '').trim() };
      const w = this.#waiters.shift();
      if (w) w(reply);
      else this.#replies.push(reply);
    }
  }

  read(timeoutMs = 30_000): Promise<Reply> {
    const queued = this.#replies.shift();
    if (queued) return Promise.resolve(queued);
    if (this.#closed) return Promise.resolve({ code: 0, text: 'connection closed' });
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('timed out waiting for an SMTP reply')), timeoutMs);
      this.#waiters.push((r) => { clearTimeout(t); resolve(r); });
    });
  }

  write(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  async cmd(line: string): Promise<Reply> {
    this.write(`${line}\r\n`);
    return this.read();
  }

  /** A whole transaction; DATA bytes are dot-stuffed here and must not be pre-stuffed. */
  async send(from: string, to: string[], data: Buffer): Promise<{ mail: Reply; rcpts: Reply[]; data: Reply | null }> {
    const mail = await this.cmd(`MAIL FROM:<${from}>`);
    const rcpts: Reply[] = [];
    for (const r of to) rcpts.push(await this.cmd(`RCPT TO:<${r}>`));
    if (!rcpts.some((r) => r.code === 250)) {
      await this.cmd('RSET');
      return { mail, rcpts, data: null };
    }
    const go = await this.cmd('DATA');
    if (go.code !== 354) return { mail, rcpts, data: go };
    this.write(dotStuff(data));
    return { mail, rcpts, data: await this.read() };
  }

  async quit(): Promise<void> {
    if (!this.#closed) {
      await this.cmd('QUIT').catch(() => {});
      this.socket.end();
    }
  }
}

/**
 * Dot-stuffing as smtp-server undoes it. smtp-server 3.21.6 removes the first "." of ".." after any
 * LF, bare or not (smtp-stream.js), so a "." at the start of the data or after every LF is doubled;
 * that round-trips any bytes, bare-LF lines starting ".." included (e.g. sisimai's "... while
 * talking to"), and "\r\n.\r\n" can never occur inside. Returns the bytes to write after DATA,
 * terminator included. What the server stores is `expectedStored(data)`.
 */
export function dotStuff(data: Buffer): Buffer {
  const parts: Buffer[] = [];
  let start = 0;
  if (data[0] === 0x2e) parts.push(Buffer.from('.'));
  for (let i = data.indexOf(0x0a); i >= 0 && i + 1 < data.length; i = data.indexOf(0x0a, i + 1)) {
    if (data[i + 1] === 0x2e) {
      parts.push(data.subarray(start, i + 1), Buffer.from('.'));
      start = i + 1;
    }
  }
  parts.push(data.subarray(start));
  const endsCrlf = data.length >= 2 && data[data.length - 2] === 0x0d && data[data.length - 1] === 0x0a;
  parts.push(Buffer.from(endsCrlf ? '.\r\n' : '\r\n.\r\n'));
  return Buffer.concat(parts);
}

/** What SMTP conveys for `data`: the CRLF before the terminating dot belongs to the message. */
export function expectedStored(data: Buffer): Buffer {
  const endsCrlf = data.length >= 2 && data[data.length - 2] === 0x0d && data[data.length - 1] === 0x0a;
  return endsCrlf ? data : Buffer.concat([data, Buffer.from('\r\n')]);
}

/** Splits a stored raw message into Mailroom's prepended trace header and the sender's bytes. */
export function splitTrace(raw: Buffer): { trace: string; body: Buffer } {
  // The trace is exactly one Received header (with folded continuation lines) at the top.
  const text = raw.toString('latin1');
  const m = /^Received: [^\r\n]*(?:\r\n[ \t][^\r\n]*)*\r\n/.exec(text);
  if (!m) return { trace: '', body: raw };
  return { trace: m[0], body: raw.subarray(Buffer.byteLength(m[0], 'latin1')) };
}

/** One message over a fresh SMTP session to Mailroom: the DATA reply code, or the RCPT one if refused. */
export async function deliverOne(port: number, mailFrom: string, rcpt: string, data: Buffer): Promise<number | undefined> {
  const c = await SmtpClient.connect(port);
  await c.cmd('EHLO client.example');
  const r = await c.send(mailFrom, [rcpt], data);
  await c.quit();
  return r.data?.code ?? r.rcpts[0]?.code;
}

export function message(opts: { from?: string; to?: string; subject?: string; body?: string; headers?: string[]; messageId?: string } = {}): Buffer {
  const lines = [
    `From: ${opts.from ?? 'Sender <sender@example.com>'}`,
    `To: ${opts.to ?? 'agent@mailroom.test'}`,
    `Subject: ${opts.subject ?? 'Test message'}`,
    `Date: ${new Date().toUTCString()}`,
    `Message-ID: ${opts.messageId ?? `<${Math.random().toString(36).slice(2)}@example.com>`}`,
    ...(opts.headers ?? []),
    '',
    opts.body ?? 'Hello from the test suite.',
    '',
  ];
  return Buffer.from(lines.join('\r\n'));
}

/**
 * If `raw` is exactly one Received header followed by `expectedStored(data)`, returns that header;
 * else null. Unlike splitTrace() this holds when the sender's first line starts with white space
 * (it then reads as a folded continuation of the trace, and splitTrace would take it along).
 */
export function traceBefore(raw: Buffer, data: Buffer): string | null {
  const sent = expectedStored(data);
  if (raw.length <= sent.length || !raw.subarray(raw.length - sent.length).equals(sent)) return null;
  const trace = raw.toString('latin1', 0, raw.length - sent.length);
  return /^Received: [^\r\n]*(?:\r\n[ \t][^\r\n]*)*\r\n$/.test(trace) ? trace : null;
}

/** Rejects, naming `what`, if `p` rejects or has not settled after `ms`: a hang names its cause. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([
    p.catch((err) => { throw new Error(`${what}: ${(err as Error)?.message ?? err}`, { cause: err }); }).finally(() => clearTimeout(t)),
    new Promise<never>((_, reject) => { t = setTimeout(() => reject(new Error(`${what}: no result after ${ms} ms (hung?)`)), ms); }),
  ]);
}

/** The first header field `name` of a raw message, unfolded and trimmed, or null. */
export function headerOf(raw: Buffer, name: string): string | null {
  const head = raw.toString('latin1').split(/\r\n\r\n/)[0].replace(/\r\n[ \t]+/g, ' ');
  return new RegExp(`^${name}:[ \\t]*(.*)$`, 'mi').exec(head)?.[1].trim() ?? null;
}

/** One message through nodemailer (a real, ordinary SMTP client) to a listener on loopback. */
export async function sendMail(port: number, mail: SendMailOptions): Promise<void> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
  try { await transport.sendMail(mail); } finally { transport.close(); }
}
