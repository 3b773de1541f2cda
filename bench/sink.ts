/**
 * The SMTP sink for `bench/outbound.ts`: an smtp-server discard listener that accepts every
 * recipient, reads DATA, throws it away and counts it. It plays the relay (or the remote MX) for
 * both paths measured there: Mailroom's relay transport and a raw nodemailer pool.
 *
 * Run as its own process, so its CPU does not share the load generator's event loop:
 *
 *   node bench/sink.ts [port] [--early-talker-delay]
 *
 * prints `listening <port>` when ready and stops on SIGTERM/SIGINT. Messages are counted per
 * group: the local part of the first recipient up to its first `-` (`mr-17@bench-sink.example` →
 * `mr`). Per group it keeps the count, distinct recipients (a duplicate would be a double send),
 * bytes, how many carried a DKIM-Signature and for which d=, and when the first and the last
 * message were accepted (epoch ms, `performance.timeOrigin + performance.now()`, taken just before
 * the `250` to the end of DATA).
 *
 * Started with an IPC channel (as bench/outbound.ts does), it answers two requests:
 *   { id, cmd: 'stats' }                  → { id, stats }
 *   { id, cmd: 'wait', group, count }     → { id, stats } once `group` has counted `count` messages
 * Without one (run by hand), it prints its counts once a second while they change.
 *
 * smtp-server waits 100 ms before it greets a new connection (an early-talker check). A pooled
 * client reconnects after every 100 messages (nodemailer's maxMessages default), so that delay
 * would weigh on the sink's throughput, not on what is measured; a relay such as Postfix greets at
 * once. By default it is therefore removed here (the rest of the library runs as shipped);
 * `--early-talker-delay` keeps it.
 */
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { SMTPServer } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';

const args = process.argv.slice(2);
const keepDelay = args.includes('--early-talker-delay');
const port = Number(args.find((a) => /^\d+$/.test(a)) ?? 0);

if (!keepDelay) {
  // SMTPConnection.init() without its `setTimeout(connectionReady, 100)`; nothing else changes.
  const proto = SMTPConnection.prototype as unknown as { init(): void; _setListeners(cb: () => void): void; connectionReady(): void };
  proto.init = function init(this: typeof proto) {
    this._setListeners(() => this.connectionReady());
  };
}

interface Group {
  count: number;
  distinct: number;
  bytes: number;
  dkim: Record<string, number>;
  unsigned: number;
  firstAt: number;
  lastAt: number;
}

export interface SinkStats {
  groups: Record<string, Group>;
  connections: number;
  /** Transactions that ended without a counted message (errors while reading DATA). */
  errors: number;
}

const now = () => performance.timeOrigin + performance.now();
const groups = new Map<string, Group>();
const seen = new Map<string, Set<string>>();
let connections = 0;
let errors = 0;
const waiters: { id: number; group: string; count: number }[] = [];

const stats = (): SinkStats => ({ groups: Object.fromEntries([...groups].map(([k, g]) => [k, { ...g, dkim: { ...g.dkim } }])), connections, errors });

function reply(msg: unknown): void {
  process.send?.(msg);
}

function count(rcpt: string, bytes: number, header: string): void {
  const at = now();
  const local = rcpt.slice(0, rcpt.lastIndexOf('@'));
  const name = local.includes('-') ? local.slice(0, local.indexOf('-')) : local || '(none)';
  let g = groups.get(name);
  if (!g) {
    g = { count: 0, distinct: 0, bytes: 0, dkim: {}, unsigned: 0, firstAt: at, lastAt: at };
    groups.set(name, g);
    seen.set(name, new Set());
  }
  g.count++;
  g.bytes += bytes;
  g.lastAt = at;
  const s = seen.get(name)!;
  const key = rcpt.toLowerCase();
  if (!s.has(key)) { s.add(key); g.distinct++; }
  const d = /^DKIM-Signature:[\s\S]*?[;\s]d=([^;\s]+)/im.exec(header)?.[1]?.toLowerCase();
  if (d) g.dkim[d] = (g.dkim[d] ?? 0) + 1;
  else g.unsigned++;
  for (let i = waiters.length - 1; i >= 0; i--) {
    const w = waiters[i];
    if (w.group === name && g.count >= w.count) {
      waiters.splice(i, 1);
      reply({ id: w.id, stats: stats() });
    }
  }
}

const server = new SMTPServer({
  name: 'sink.bench.test',
  banner: 'bench sink (discards)',
  size: 50 * 1024 * 1024,
  authOptional: true,
  disabledCommands: ['AUTH'],
  hideSTARTTLS: true,
  disableReverseLookup: true,
  maxClients: 10_000,
  logger: false,
  onConnect(_session, cb) {
    connections++;
    cb();
  },
  onData(stream, session, cb) {
    let bytes = 0;
    let header = '';
    let headerDone = false;
    stream.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (headerDone) return;
      header += chunk.toString('latin1');
      const end = header.indexOf('\r\n\r\n');
      if (end >= 0) { header = header.slice(0, end); headerDone = true; }
      else if (header.length > 256 * 1024) headerDone = true;
    });
    stream.on('error', (err) => { errors++; cb(err); });
    stream.on('end', () => {
      const rcpt = session.envelope.rcptTo[0]?.address ?? '';
      count(rcpt, bytes, header);
      cb(null, '2.0.0 Ok: discarded');
    });
  },
});
server.on('error', () => {});

process.on('message', (m: { id: number; cmd: string; group?: string; count?: number }) => {
  if (m.cmd === 'stats') reply({ id: m.id, stats: stats() });
  else if (m.cmd === 'wait') {
    const g = groups.get(m.group!);
    if (g && g.count >= m.count!) reply({ id: m.id, stats: stats() });
    else waiters.push({ id: m.id, group: m.group!, count: m.count! });
  }
});

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.server.address() as AddressInfo).port}${keepDelay ? ' (early-talker delay kept)' : ''}\n`);
  if (!process.send) {
    let last = '';
    setInterval(() => {
      const line = [...groups].map(([k, g]) => `${k} ${g.count}`).join(', ');
      if (line !== last) process.stdout.write(`${new Date().toISOString()} ${line}\n`);
      last = line;
    }, 1000).unref();
  }
});

const stop = () => {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
process.once('disconnect', stop);
