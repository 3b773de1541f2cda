import net, { type AddressInfo } from 'node:net';

/**
 * The common part of the test proxies that stand between Mailroom and a remote SMTP server
 * (lost-reply-proxy.ts, fault-proxy.ts): a listener whose every connection gets an upstream one to
 * `target`, both torn down together; `wire` decides what passes between them.
 */
export interface TcpProxy {
  port: number;
  close(): Promise<void>;
}

export async function startTcpProxy(
  target: { host?: string; port: number },
  wire: (client: net.Socket, upstream: net.Socket, cut: () => void) => void,
  listen: { host?: string; port?: number } = {},
): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host ?? '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    const cut = () => { client.destroy(); upstream.destroy(); };
    client.on('close', cut);
    upstream.on('close', cut);
    wire(client, upstream, cut);
  });
  await new Promise<void>((resolve) => server.listen(listen.port ?? 0, listen.host ?? '127.0.0.1', () => resolve()));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}
