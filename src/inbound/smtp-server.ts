import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerAddress, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';
import './relay-guard.ts';
import './line-limit.ts';
import type { Config } from '../config/config.ts';
import { isTransientStorageError } from '../errors.ts';
import { newId } from '../ids.ts';
import type { Inboxes } from '../inboxes/inboxes.ts';
import type { Logger } from '../log.ts';
import type { Acceptor } from './accept.ts';
import type { ReceiptEnvelope } from './receipts.ts';
import { classifyRecipient } from './recipient-policy.ts';
import { receivedHeader } from './trace.ts';
import { parseVerp } from '../outbound/verp.ts';
import { parseUnsubscribeAddress } from '../outbound/unsubscribe.ts';

/**
 * Inbound SMTP (smtp-server). This file owns the protocol edge: recipient policy, limits, and the
 * one rule that matters most — the final reply is `250` only after `acceptor.accept` resolved, i.e.
 * after the message is durably committed. Parsing happens later, from the ingest queue.
 */

type Session = SMTPServerSession & { mailroom?: { inboxes: Map<string, { inboxId: string; rcpt: string }> } };

const smtpError = (code: number, message: string) => Object.assign(new Error(message), { responseCode: code });

/** RCPT parameters we understand (RFC 3461 DSN). Anything else is refused rather than silently ignored. */
const RCPT_PARAMS = new Set(['NOTIFY', 'ORCPT']);

export interface InboundSmtp {
  server: SMTPServer;
  port: number;
  close(): Promise<void>;
}

export async function startSmtpServer(deps: {
  config: Config;
  inboxes: Inboxes;
  acceptor: Acceptor;
  log: Logger;
  /** The inbox that sent an outbound message, for its VERP return path; null if none (or deleted). */
  verpInbox: (messageId: string) => Promise<string | null>;
}): Promise<InboundSmtp> {
  const { config, inboxes, acceptor, log, verpInbox } = deps;
  const perIp = new Map<string, number>();
  const counted = new Set<string>();

  const server = new SMTPServer({
    name: config.hostname,
    banner: 'Mailroom',
    size: config.maxMessageSize,
    authOptional: true,
    disabledCommands: config.tls ? ['AUTH'] : ['AUTH', 'STARTTLS'],
    hideSTARTTLS: !config.tls,
    ...(config.tls ? { key: readFileSync(config.tls.key), cert: readFileSync(config.tls.cert) } : {}),
    maxClients: config.maxConnections,
    maxRecipients: config.maxRecipients,
    // The client has 5 minutes per command and for the data phase (RFC 5321 §4.5.3.2 asks for more,
    // but an idle connection holds a slot that an honest sender could use).
    socketTimeout: 5 * 60 * 1000,
    // On shutdown, sessions in the middle of a transaction get this long to finish (and be answered
    // 250 once committed); then every session still open is told 421 and closed.
    closeTimeout: config.shutdownGraceSeconds * 1000,
    logger: false,

    onConnect(session, callback) {
      const ip = session.remoteAddress ?? 'unknown';
      const n = perIp.get(ip) ?? 0;
      if (n >= config.maxConnectionsPerIp) {
        return callback(smtpError(421, `4.7.0 Too many connections from ${ip}, try again later`));
      }
      perIp.set(ip, n + 1);
      counted.add(session.id);
      callback();
    },

    onClose(session) {
      if (!counted.delete(session.id)) return;
      const ip = session.remoteAddress ?? 'unknown';
      const n = (perIp.get(ip) ?? 1) - 1;
      if (n <= 0) perIp.delete(ip);
      else perIp.set(ip, n);
    },

    onMailFrom(_address, session: Session, callback) {
      session.mailroom = { inboxes: new Map() };
      callback();
    },

    onRcptTo(address: SMTPServerAddress, session: Session, callback) {
      const args = (address.args || {}) as Record<string, unknown>;
      const unknown = Object.keys(args).filter((k) => !RCPT_PARAMS.has(k));
      if (unknown.length) return callback(smtpError(555, `5.5.4 Unsupported RCPT TO parameters: ${unknown.join(' ').slice(0, 64)}`));
      const cls = classifyRecipient(address.address, config.domains);
      if (cls.kind === 'foreign') {
        return callback(smtpError(550, '5.7.1 Relaying denied: this server only accepts mail for its own domains'));
      }
      // A VERP return path of ours (bounces+msg_…@domain) is delivered to the inbox that sent
      // that message: the report reaches the agent, and the outbound side applies it.
      // So is a mailto: unsubscribe (unsubscribe+msg_….<mac>@domain): it names the message it is about.
      const verp = parseVerp(address.address);
      const unsubscribe = parseUnsubscribeAddress(address.address);
      const about = verp?.messageId ?? unsubscribe?.messageId ?? null;
      (about ? verpInbox(about) : inboxes.idForAddress(cls.username, cls.domain)).then(
        (inboxId) => {
          if (!inboxId) return callback(smtpError(550, `5.1.1 <${address.address}>: no such mailbox here`));
          session.mailroom ??= { inboxes: new Map() };
          // Two addresses of one inbox (user+a, user+b) deliver one copy.
          if (!session.mailroom.inboxes.has(inboxId)) session.mailroom.inboxes.set(inboxId, { inboxId, rcpt: address.address });
          callback();
        },
        (err) => {
          log.error({ err }, 'recipient lookup failed');
          callback(smtpError(451, '4.3.0 Temporary failure looking up the recipient, try again later'));
        },
      );
    },

    onData(stream: SMTPServerDataStream, session: Session, callback) {
      const chunks: Buffer[] = [];
      let size = 0;
      // Header-section limit: the blank line ending the headers must come within maxHeaderSize bytes.
      let headerEnd = -1;
      let scanned = Buffer.alloc(0);
      stream.on('data', (chunk: Buffer) => {
        size += chunk.length;
        // Past the size limit, keep draining but stop buffering: memory stays bounded (maildev#551).
        if (size <= config.maxMessageSize) chunks.push(chunk);
        if (headerEnd < 0 && scanned.length < config.maxHeaderSize + 4) {
          scanned = Buffer.concat([scanned, chunk.subarray(0, config.maxHeaderSize + 4 - scanned.length)]);
          const crlf = scanned.indexOf('\r\n\r\n');
          const lf = scanned.indexOf('\n\n');
          const at = crlf >= 0 && (lf < 0 || crlf < lf) ? crlf : lf;
          if (at >= 0) headerEnd = at;
        }
      });
      stream.on('error', (err) => callback(err));
      stream.on('end', () => {
        if (stream.sizeExceeded || size > config.maxMessageSize) {
          return callback(smtpError(552, `5.3.4 Message size exceeds the fixed maximum of ${config.maxMessageSize} bytes`));
        }
        // A message that is all header (no blank line) is legal; only an over-long header section is refused.
        if (headerEnd < 0 ? size > config.maxHeaderSize : headerEnd > config.maxHeaderSize) {
          return callback(smtpError(552, `5.3.4 Message header section exceeds ${config.maxHeaderSize} bytes`));
        }
        const recipients = [...(session.mailroom?.inboxes.values() ?? [])];
        if (!recipients.length) return callback(smtpError(554, '5.5.1 No valid recipients'));
        const id = newId('rcv');
        const now = new Date();
        const trace = receivedHeader({
          helo: session.hostNameAppearsAs ?? null,
          remoteAddress: session.remoteAddress ?? null,
          clientHostname: session.clientHostname ?? null,
          hostname: config.hostname,
          tls: Boolean(session.secure),
          esmtp: session.openingCommand !== 'HELO',
          receiptId: id,
          recipients: recipients.map((r) => r.rcpt),
          date: now,
        });
        const envelope: ReceiptEnvelope = {
          id,
          mail_from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          // Client-chosen text goes into PostgreSQL text columns, which refuse U+0000: strip controls.
          helo: session.hostNameAppearsAs?.replace(/[\u0000-\u001f\u007f]/g, '') ?? null,
          remote_address: session.remoteAddress ?? null,
          tls: Boolean(session.secure),
          received_at: now.toISOString(),
          trace_size: trace.length,
          deliveries: recipients.map((r) => ({ id: newId('msg'), inbox_id: r.inboxId, rcpt_to: r.rcpt })),
        };
        acceptor.accept(envelope, Buffer.concat([trace, ...chunks], trace.length + size), { smtp: true }).then(
          () => callback(null, `2.0.0 Ok: queued as ${id}`),
          (err) => {
            log.error({ err, receipt: id }, 'could not commit an incoming message; answered with a temporary failure');
            callback(isTransientStorageError(err)
              ? smtpError(452, '4.3.1 Insufficient system storage, try again later')
              : smtpError(451, '4.3.0 Local error in processing, try again later'));
          },
        );
      });
    },
  });

  server.on('error', (err) => log.warn({ err }, 'smtp connection error'));

  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(config.smtpPort, config.smtpHost, () => {
      server.server.off('error', reject);
      resolve();
    });
  });
  const port = (server.server.address() as AddressInfo).port;
  return {
    server,
    port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
