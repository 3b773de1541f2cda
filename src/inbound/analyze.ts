import { a2aInfo, findA2a, type A2aEnvelope, type A2aInfo } from '../a2a/format.ts';
import { authVerdict, type AuthVerdict } from '../intel/auth.ts';
import { scoreInjection, type InjectionVerdict } from '../intel/injection.ts';
import { messageKind, type MessageKind } from '../intel/kind.ts';
import { extractReply } from '../intel/reply/index.ts';
import { parseMessage, type ParsedMessage } from '../mime/parse.ts';
import { sha256Hex, type BlobStore } from '../store/blobs.ts';
import { traceHeaderFields } from './trace.ts';

/**
 * What ingest learns about one received message without touching the database: the parse
 * (mailparser), its kind, the authentication verdicts, the reply without its quoted history and the
 * injection score — all CPU work plus DNS, so it runs outside every transaction, and in embedded
 * mode on worker threads (`analyzer.ts`) so that it holds up neither SMTP nor the database thread.
 * The results are plain data: they cross a thread boundary by structured clone.
 */
export interface AnalyzeInput {
  /** Mailroom's trace header followed by the sender's bytes, as stored. */
  raw: Buffer;
  trace_size: number;
  mail_from: string;
  helo: string | null;
  remote_address: string | null;
  /** Return the raw's sha256 (embedded: the raw itself stays in the spool). */
  hash_raw?: boolean;
}

/** An attachment of an analysed message: its metadata, and its body until it is stored. */
export interface AnalyzedAttachment {
  filename: string | null;
  content_type: string;
  disposition: string | null;
  content_id: string | null;
  size: number;
  /** null until the body is stored; then `content` is dropped. */
  sha256: string | null;
  content?: Buffer;
}

/**
 * What ingest writes for one message, ready for its rows: the fields it needs as values, and the
 * jsonb columns already serialised, where the parsing happened (on an analysis thread that is work
 * the database and SMTP threads do not do, and a string crosses threads cheaper than an object tree).
 */
export interface Analysis {
  /** sha256 of `raw` when `hash_raw` asked for it, else null. */
  raw_sha256: string | null;
  message: Pick<ParsedMessage, 'from' | 'subject' | 'date' | 'message_id' | 'in_reply_to' | 'references' | 'text' | 'html'>;
  attachments: AnalyzedAttachment[];
  json: { to: string; cc: string; reply_to: string; references: string; headers: string; parse_warnings: string; security: string; kind_evidence: string; a2a: string | null };
  /** The a2a part (a2a/format.ts) without its payload, for the message.received event; null when there is none. */
  a2a: Pick<A2aInfo, 'type' | 'intent' | 'correlation_id' | 'authenticated'> | null;
  kind: MessageKind['kind'];
  return_date: string | null;
  /** The reply without quoted history, signature and forwarded blocks; null when nothing was found. */
  extracted_text: string | null;
  injection: InjectionVerdict;
}

/** How `security.auth` is computed: the authserv-id (our host name), a resolver, the domains that count as ours. */
export interface AuthOptions { authservId: string; resolve: (name: string, rrtype: string) => Promise<unknown>; trustedDomains?: readonly string[] }

/**
 * Analyses a batch. Parsing is sequential (CPU); the authentication of every message is started as
 * soon as it is parsed and awaited together, so DNS waits overlap.
 * `blobs`: when given, attachment bodies are written there and only their hashes are returned;
 * without it the bodies stay in `parsed.attachments` for the caller.
 */
export async function analyzeMessages(inputs: AnalyzeInput[], opts: { auth?: AuthOptions | null; blobs?: BlobStore | null }): Promise<Analysis[]> {
  const stage: { parsed: ParsedMessage; raw_sha256: string | null; attachments: AnalyzedAttachment[]; kind: MessageKind; auth: Promise<AuthVerdict | null>; a2a: A2aEnvelope | null }[] = [];
  for (const input of inputs) {
    const { raw, trace_size } = input;
    const raw_sha256 = input.hash_raw ? sha256Hex(raw) : null;
    const sender = raw.subarray(trace_size);
    // The sender's bytes are parsed on their own and Mailroom's trace headers are added from its own
    // bytes: a message whose first line starts with a space or tab would otherwise read as a folded
    // continuation of our Received header, letting a sender append text to a header we vouch for.
    const parsed = await parseMessage(sender);
    parsed.headers = [...traceHeaderFields(raw.subarray(0, trace_size)), ...parsed.headers];
    // Read before the attachment bodies are dropped below; its trust needs the verdicts, later.
    const a2a = findA2a(parsed.attachments);
    if (a2a.warning) parsed.warnings.push(a2a.warning);
    const attachments: AnalyzedAttachment[] = [];
    for (const a of parsed.attachments) {
      const { content, ...meta } = a;
      // Stored right away, so a batch of large messages does not hold every attachment in memory.
      attachments.push(opts.blobs ? { ...meta, size: content.length, sha256: await opts.blobs.put(content) } : { ...meta, size: content.length, sha256: null, content });
      a.content = Buffer.alloc(0);
    }
    const kind = await messageKind(parsed, sender, input.mail_from);
    // authVerdict never throws: a failure is a verdict (temperror) with a signal.
    const auth = opts.auth
      ? authVerdict(sender, { ip: input.remote_address, helo: input.helo, mailFrom: input.mail_from }, parsed, opts.auth)
      : Promise.resolve(null);
    stage.push({ parsed, raw_sha256, attachments, kind, auth, a2a: a2a.envelope });
  }
  const out: Analysis[] = [];
  for (const s of stage) {
    const auth = await s.auth;
    const p = s.parsed;
    let extracted_text: string | null;
    try {
      const x = extractReply(p.text, p.html);
      extracted_text = x.method === 'none' ? null : x.text;
    } catch {
      extracted_text = null; // never lose a message to the extractor: the full text stays
    }
    const a2a = s.a2a ? a2aInfo(s.a2a, auth) : null;
    const injection = scoreInjection({ subject: p.subject, text: p.text, html: p.html, fromName: p.from?.name, attachments: p.attachments, auth });
    out.push({
      raw_sha256: s.raw_sha256,
      message: { from: p.from, subject: p.subject, date: p.date, message_id: p.message_id, in_reply_to: p.in_reply_to, references: p.references, text: p.text, html: p.html },
      attachments: s.attachments,
      json: {
        to: JSON.stringify(p.to),
        cc: JSON.stringify(p.cc),
        reply_to: JSON.stringify(p.reply_to),
        references: JSON.stringify(p.references),
        headers: JSON.stringify(p.headers),
        parse_warnings: JSON.stringify(p.warnings),
        security: JSON.stringify({ ...(auth ? { auth } : {}), injection }),
        kind_evidence: JSON.stringify(s.kind.evidence),
        a2a: a2a ? JSON.stringify(a2a) : null,
      },
      a2a: a2a ? { type: a2a.type, intent: a2a.intent, correlation_id: a2a.correlation_id, authenticated: a2a.authenticated } : null,
      kind: s.kind.kind,
      return_date: s.kind.return_date,
      extracted_text,
      injection,
    });
  }
  return out;
}
