import type net from 'node:net';
import { mulberry32 } from './random.ts';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.ts';

/**
 * A TCP proxy that makes a network unreliable, the in-repo stand-in for `tc netem` (which needs a
 * network namespace CI may not grant): every chunk, in either direction, is held `delayMs`, and
 * with probability `cutChance` the connection is cut instead of passing it — before a greeting,
 * mid-message, or after the final dot with the reply lost. Seeded, so a failing run can be replayed
 * (as far as the order of connections repeats).
 */
export interface FaultProxy extends TcpProxy {
  /** Connections cut so far. */
  cuts: number;
}

export async function startFaultProxy(target: { host?: string; port: number }, opts: { cutChance: number; delayMs: number; maxCuts: number; seed: number }): Promise<FaultProxy> {
  const random = mulberry32(opts.seed);
  let cuts = 0;
  // Chunks keep their order: each waits for the one before it in the same direction.
  const relay = (from: net.Socket, to: net.Socket, cut: () => void) => {
    let last = Promise.resolve();
    from.on('data', (chunk: Buffer) => {
      last = last.then(() => new Promise<void>((resolve) => setTimeout(() => {
        if (cuts < opts.maxCuts && random() < opts.cutChance) {
          cuts++;
          cut();
        } else if (!to.destroyed) {
          to.write(chunk);
        }
        resolve();
      }, opts.delayMs)));
    });
  };
  const proxy = await startTcpProxy(target, (client, upstream, cut) => {
    relay(client, upstream, cut);
    relay(upstream, client, cut);
  });
  return { port: proxy.port, close: proxy.close, get cuts() { return cuts; } };
}
