/**
 * The baseline for `bench/inbound.ts`: a bare smtp-server that accepts every recipient and throws
 * the DATA away, with the same library version and the same connection options as Mailroom's
 * inbound server (no TLS, no AUTH, reverse lookup and the 100 ms early-talker delay left as they
 * are). It is the ceiling for "smtp-server + anything": protocol handling and nothing else.
 *
 * Run as its own process: `node bench/bare-smtp.ts [port]` prints `listening <port>` when ready and
 * stops on SIGTERM/SIGINT.
 */
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

const server = new SMTPServer({
  name: 'bare.bench.test',
  banner: 'bare smtp-server (discards)',
  size: 25 * 1024 * 1024,
  authOptional: true,
  disabledCommands: ['AUTH', 'STARTTLS'],
  hideSTARTTLS: true,
  maxClients: 1000,
  socketTimeout: 5 * 60 * 1000,
  logger: false,
  onData(stream, _session, callback) {
    stream.on('data', () => {});
    stream.on('error', (err) => callback(err));
    stream.on('end', () => callback(null, '2.0.0 Ok: discarded'));
  },
});
server.on('error', () => {});

server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.server.address() as AddressInfo).port}\n`);
});

const stop = () => server.close(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
