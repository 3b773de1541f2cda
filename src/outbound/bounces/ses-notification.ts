/**
 * Amazon SES event notifications delivered by email through SNS: the body is one JSON document
 * ({"notificationType": "Bounce" | "Complaint" | "Delivery", ...}, or "eventType" for
 * configuration-set events). SNS email breaks very long lines with "!\n " sequences, which are
 * undone before parsing. See docs.aws.amazon.com/ses/latest/dg/notification-contents.html.
 */

export interface SesRecipient { address: string; action: string | null; status: string | null; diagnostic: string | null }

export interface SesNotification {
  type: 'bounce' | 'complaint' | 'delivery';
  /** Permanent / Transient / Undetermined, for bounces */
  bounceType: string | null;
  complaintFeedbackType: string | null;
  recipients: SesRecipient[];
  original: { messageId: string | null; from: string | null; to: string | null; subject: string | null; source: string | null };
}

type Json = Record<string, unknown>;
const obj = (v: unknown): Json => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string | null => (typeof v === 'string' && v ? v : null);

const parse = (s: string): Json | null => {
  try {
    return obj(JSON.parse(s));
  } catch {
    return null;
  }
};

/**
 * The SES notification in `text`: either the bare JSON document (SNS "raw message delivery") or
 * wrapped in an SNS envelope ({"Type": "Notification", "Message": "<the JSON, as a string>"}).
 */
function extractJson(text: string): Json | null {
  const flat = text.replace(/!\n /g, '');
  const start = flat.search(/\{\s*"(?:notificationType|eventType|Type)"\s*:/);
  const end = flat.lastIndexOf('}');
  if (start < 0 || end <= start) return null;
  const doc = parse(flat.slice(start, end + 1));
  if (!doc) return null;
  if (doc.notificationType || doc.eventType) return doc;
  const inner = typeof doc.Message === 'string' ? parse(doc.Message) : null;
  return inner && (inner.notificationType || inner.eventType) ? inner : null;
}

export function parseSesNotification(text: string): SesNotification | null {
  const doc = extractJson(text);
  if (!doc) return null;
  const kind = (str(doc.notificationType) ?? str(doc.eventType) ?? '').toLowerCase();
  const mail = obj(doc.mail);
  const common = obj(mail.commonHeaders);
  const original = {
    messageId: str(common.messageId) ?? str(mail.messageId),
    from: arr(common.from).map(str).filter(Boolean).join(', ') || str(mail.source),
    to: arr(common.to).map(str).filter(Boolean).join(', ') || arr(mail.destination).map(str).filter(Boolean).join(', ') || null,
    subject: str(common.subject),
    source: str(mail.source),
  };
  if (kind === 'bounce') {
    const b = obj(doc.bounce);
    const recipients = arr(b.bouncedRecipients).map((r) => {
      const o = obj(r);
      return { address: (str(o.emailAddress) ?? '').toLowerCase(), action: str(o.action), status: str(o.status), diagnostic: str(o.diagnosticCode) };
    }).filter((r) => r.address);
    return { type: 'bounce', bounceType: str(b.bounceType), complaintFeedbackType: null, recipients, original };
  }
  if (kind === 'complaint') {
    const c = obj(doc.complaint);
    const recipients = arr(c.complainedRecipients).map((r) => ({ address: (str(obj(r).emailAddress) ?? '').toLowerCase(), action: null, status: null, diagnostic: null })).filter((r) => r.address);
    return { type: 'complaint', bounceType: null, complaintFeedbackType: str(c.complaintFeedbackType), recipients, original };
  }
  if (kind === 'delivery') {
    const d = obj(doc.delivery);
    const response = str(d.smtpResponse);
    const recipients = arr(d.recipients).map((r) => ({ address: (str(r) ?? '').toLowerCase(), action: 'delivered', status: null, diagnostic: response })).filter((r) => r.address);
    return { type: 'delivery', bounceType: null, complaintFeedbackType: null, recipients, original };
  }
  return null;
}
