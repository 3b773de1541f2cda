import { startTcpProxy, type TcpProxy } from './tcp-proxy.ts';

/**
 * A TCP proxy in front of an SMTP server that loses the server's reply to the end of a message's
 * data: the server has accepted the message (its `250` is on the wire), the client never hears it,
 * and the connection drops. The failure RFC 5321 §4.1.5 warns about, where a sender cannot know
 * whether its message was delivered. Plain SMTP only (the server must not offer STARTTLS: the
 * proxy reads the client's commands to find the end of data).
 */
export interface LostReplyProxy extends TcpProxy {
  /** Replies lost so far. */
  lost: number;
}

export async function startLostReplyProxy(target: { host?: string; port: number }, opts: { lose: number; host?: string; port?: number }): Promise<LostReplyProxy> {
  let lost = 0;
  const proxy = await startTcpProxy(target, (client, upstream, cut) => {
    // What the client has said: a command line at a time until DATA, then message bytes until the
    // terminating <CRLF>.<CRLF> (dot-stuffing keeps that sequence out of the message itself).
    let line = '';
    let inData = false;
    let tail = '';
    let awaitingFinalReply = false;
    const observe = (text: string): void => {
      if (inData) {
        for (let i = 0; i < text.length; i++) {
          tail = (tail + text[i]).slice(-5);
          if (tail === '\r\n.\r\n') {
            inData = false;
            awaitingFinalReply = true;
            return observe(text.slice(i + 1));
          }
        }
        return;
      }
      line += text;
      let nl: number;
      while ((nl = line.indexOf('\r\n')) >= 0) {
        const command = line.slice(0, nl);
        line = line.slice(nl + 2);
        if (/^DATA$/i.test(command)) {
          inData = true;
          tail = '\r\n';
          const rest = line;
          line = '';
          return observe(rest);
        }
      }
    };
    client.on('data', (chunk: Buffer) => {
      observe(chunk.toString('latin1'));
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      // The reply to the DATA command (354) passes; the one to the end of data is lost, while losses remain.
      if (awaitingFinalReply && /^2\d\d[ -]/.test(chunk.toString('latin1')) && lost < opts.lose) {
        lost++;
        cut();
        return;
      }
      if (awaitingFinalReply && /^[245]\d\d /m.test(chunk.toString('latin1'))) awaitingFinalReply = false;
      client.write(chunk);
    });
  }, { host: opts.host, port: opts.port });
  return { port: proxy.port, close: proxy.close, get lost() { return lost; } };
}
