/**
 * The machine-readable part of an RFC 3464 delivery status notification (message/delivery-status):
 * one block of per-message fields, then one block per recipient, blocks separated by blank lines.
 * Real reports bend the format (no blank line between recipients, folded Diagnostic-Code lines,
 * fields in a text/plain part), so a new recipient block also starts at a second
 * Final-Recipient/Original-Recipient field.
 */

export interface DsnRecipientFields {
  finalRecipient: string | null;
  originalRecipient: string | null;
  action: string | null;
  status: string | null;
  diagnosticType: string | null;
  diagnosticCode: string | null;
  remoteMta: string | null;
  /** X-Actual-Recipient and friends some MTAs add when aliases were expanded */
  actualRecipient: string | null;
  /** text after the code in the Status field: "4.0.0 (cat.example.net: host name lookup failure)" */
  statusComment: string | null;
  /** vendor fields of the recipient block (X-PowerMTA-BounceCategory, ...), lower-cased names */
  extensions: Record<string, string>;
}

export interface DeliveryStatusReport {
  reportingMta: string | null;
  recipients: DsnRecipientFields[];
}

interface Field { name: string; value: string }

const MAX_RECIPIENTS = 500;

function fieldsOf(text: string): Field[] {
  const out: Field[] = [];
  for (const line of text.split('\n')) {
    if (/^[ \t]+\S/.test(line) && out.length) {
      out[out.length - 1].value += ' ' + line.trim();
      continue;
    }
    const m = /^([A-Za-z][A-Za-z0-9-]*)[ \t]*:[ \t]*(.*)$/.exec(line);
    if (m) out.push({ name: m[1].toLowerCase(), value: m[2].trim() });
    else if (!line.trim()) out.push({ name: '', value: '' }); // block separator
  }
  return out;
}

/** "rfc822; <User@Example.com>" → "user@example.com". */
export function addressFromTyped(value: string | null): string | null {
  if (!value) return null;
  let v = value.includes(';') ? value.slice(value.indexOf(';') + 1) : value;
  v = v.trim().replace(/^<|>$/g, '').trim();
  const m = /[^\s<>"(),;:]+@[^\s<>"(),;:]+/.exec(v);
  return m ? m[0].replace(/\.$/, '').toLowerCase() : null;
}

/** "smtp; 550 5.1.1 ..." → type "smtp" and the text after the semicolon. */
function splitTyped(value: string): { type: string | null; text: string } {
  const m = /^([A-Za-z][A-Za-z0-9-]*)\s*;\s*([\s\S]*)$/.exec(value);
  return m ? { type: m[1].toLowerCase(), text: m[2].trim() } : { type: null, text: value.trim() };
}

const RECIPIENT_FIELDS = new Set(['final-recipient', 'original-recipient', 'x-actual-recipient', 'action', 'status', 'diagnostic-code', 'remote-mta', 'last-attempt-date', 'will-retry-until', 'x-display-name']);

function emptyRecipient(): DsnRecipientFields {
  return { finalRecipient: null, originalRecipient: null, action: null, status: null, diagnosticType: null, diagnosticCode: null, remoteMta: null, actualRecipient: null, statusComment: null, extensions: {} };
}

export function parseDeliveryStatus(text: string): DeliveryStatusReport {
  const report: DeliveryStatusReport = { reportingMta: null, recipients: [] };
  let current: DsnRecipientFields | null = null;
  const close = () => {
    // A real report covers one message's recipients; a few hundred is already a mass mailing.
    if (current && report.recipients.length < MAX_RECIPIENTS && (current.finalRecipient || current.originalRecipient || current.status || current.action)) report.recipients.push(current);
    current = null;
  };
  for (const f of fieldsOf(text)) {
    if (!f.name) {
      close();
      continue;
    }
    if (f.name === 'reporting-mta') {
      report.reportingMta ??= splitTyped(f.value).text;
      continue;
    }
    if (!RECIPIENT_FIELDS.has(f.name)) {
      // Vendor extensions inside a recipient block belong to that recipient.
      if (current && f.name.startsWith('x-')) (current as DsnRecipientFields).extensions[f.name] = f.value;
      continue;
    }
    // A second recipient field without a blank line in between: the sender forgot the separator.
    if (current && ((f.name === 'final-recipient' && current.finalRecipient) || (f.name === 'original-recipient' && current.originalRecipient))) close();
    const cur: DsnRecipientFields = current ?? emptyRecipient();
    current = cur;
    switch (f.name) {
      case 'final-recipient': cur.finalRecipient = addressFromTyped(f.value); break;
      case 'original-recipient': cur.originalRecipient = addressFromTyped(f.value); break;
      case 'x-actual-recipient': cur.actualRecipient = addressFromTyped(f.value); break;
      case 'action': cur.action = f.value.toLowerCase().split(/[\s(;]/)[0] || null; break;
      case 'status': {
        const m = /([245])\.(\d{1,3})\.(\d{1,3})/.exec(f.value);
        cur.status = m ? `${m[1]}.${Number(m[2])}.${Number(m[3])}` : null;
        // "(permanent failure)" and the like only restate the class; anything else explains.
        const comment = f.value.slice((m?.index ?? 0) + (m?.[0].length ?? 0)).replace(/^[\s(]+|[\s)]+$/g, '');
        cur.statusComment = comment && !/^(?:permanent|temporary|persistent|transient)?\s*(?:failure|error|success)?$/i.test(comment) ? comment : null;
        break;
      }
      case 'diagnostic-code': {
        const { type, text: diag } = splitTyped(f.value);
        cur.diagnosticType = type;
        cur.diagnosticCode = diag || null;
        break;
      }
      case 'remote-mta': cur.remoteMta = splitTyped(f.value).text || null; break;
    }
  }
  close();
  return report;
}

/** Whether a text part carries DSN fields (some MTAs send them as text/plain). */
export function looksLikeDeliveryStatus(text: string): boolean {
  return /^(?:final|original)-recipient\s*:/im.test(text) && /^(?:status|action)\s*:/im.test(text);
}

// DSN fields, per-message and per-recipient, as they appear when a report inlines them in text.
const DSN_FIELD = /^(?:reporting-mta|received-from-mta|arrival-date|final-recipient|original-recipient|x-actual-recipient|action|status|remote-mta|diagnostic-code|last-attempt-date|will-retry-until|final-log-id|original-envelope-id|dsn-gateway|x-display-name|x-postfix-[a-z-]+)\s*:/i;

/** `text` without inlined DSN field lines (and their continuation lines): what is left is prose. */
export function withoutDeliveryStatusFields(text: string): string {
  const out: string[] = [];
  let inField = false;
  for (const line of text.split('\n')) {
    if (DSN_FIELD.test(line)) inField = true;
    else if (!(inField && /^[ \t]+\S/.test(line))) inField = false;
    if (!inField) out.push(line);
  }
  return out.join('\n');
}
