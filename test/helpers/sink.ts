import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

/**
 * A second smtp-server playing the recipient's MX (or a relay): it records every transaction it
 * accepts — envelope, raw bytes, whether the session was TLS — and can be told to refuse
 * recipients or whole messages with any reply. Real sockets; nothing is mocked.
 */
export interface SinkMessage { from: string; to: string[]; raw: Buffer; secure: boolean; helo: string; /** Date.now() when the message was accepted. */ at: number }

export interface SinkOptions {
  /** A reply for a RCPT, or null to accept it. */
  rcpt?: (address: string) => { code: number; message: string } | null;
  /** A reply for the DATA of a message, or null to accept it. */
  data?: (msg: SinkMessage) => { code: number; message: string } | null;
  /** Require this user/password (AUTH PLAIN/LOGIN), as a relay does. */
  auth?: { user: string; pass: string };
  /** Offer STARTTLS (with smtp-server's self-signed certificate). Default true. */
  starttls?: boolean;
  /** Wait this long before answering each DATA (a slow remote server). Changeable while running via `sink.delayMs`. */
  delayMs?: number;
  /** Where to listen: 127.0.0.1 and a free port unless told (a second MX host on 127.0.0.2 shares the MX port). */
  host?: string;
  port?: number;
}

export interface Sink {
  port: number;
  messages: SinkMessage[];
  /** Transactions refused at DATA, for counting attempts. */
  refused: number;
  delayMs: number;
  waitFor(count: number, timeoutMs?: number): Promise<SinkMessage[]>;
  close(): Promise<void>;
}

const replyError = (r: { code: number; message: string }) => Object.assign(new Error(r.message), { responseCode: r.code });

export async function startSink(opts: SinkOptions = {}): Promise<Sink> {
  const messages: SinkMessage[] = [];
  const sink = { port: 0, messages, refused: 0, delayMs: opts.delayMs ?? 0 } as Sink;
  const server = new SMTPServer({
    // STARTTLS is offered with smtp-server's built-in self-signed certificate: opportunistic TLS.
    authOptional: !opts.auth,
    disabledCommands: opts.auth ? [] : ['AUTH'],
    allowInsecureAuth: true,
    disableReverseLookup: true,
    hideSTARTTLS: opts.starttls === false,
    logger: false,
    size: 50 * 1024 * 1024,
    onAuth(auth, _session, cb) {
      if (opts.auth && auth.username === opts.auth.user && auth.password === opts.auth.pass) return cb(null, { user: auth.username });
      cb(Object.assign(new Error('535 5.7.8 authentication failed'), { responseCode: 535 }));
    },
    onRcptTo(address, _session, cb) {
      const r = opts.rcpt?.(address.address);
      cb(r ? replyError(r) : undefined);
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const msg: SinkMessage = {
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks),
          secure: Boolean(session.secure),
          helo: session.hostNameAppearsAs ?? '',
          at: 0,
        };
        const r = opts.data?.(msg);
        if (r) {
          sink.refused++;
          return cb(replyError(r));
        }
        const accept = () => {
          msg.at = Date.now();
          messages.push(msg);
          cb(null);
        };
        if (sink.delayMs > 0) setTimeout(accept, sink.delayMs);
        else accept();
      });
    },
  });
  server.on('error', () => {});
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve()));
  sink.port = (server.server.address() as AddressInfo).port;
  sink.waitFor = async (count, timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs;
    while (messages.length < count) {
      if (Date.now() > deadline) throw new Error(`the sink got ${messages.length} of ${count} messages in ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return messages;
  };
  sink.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return sink;
}

/** The largest number of arrivals in any window of `ms` (sliding, starting at each arrival): what a rate limit must bound at the receiver. */
export function maxInAnyWindow(times: number[], ms: number): number {
  const t = [...times].sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; i < t.length; i++) {
    while (t[j] <= t[i] - ms) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}
