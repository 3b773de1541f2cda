import type { HintContext, HintRule } from './hint-rules.ts';
import type { BounceReason } from './types.ts';

/**
 * Reasons some reporting MTAs state in their own fixed wording, which the generic phrase families
 * would misread or miss. Each rule names the software it is for, recognises that software by its
 * report (not by any particular sample) and maps its message texts — taken from its source code or
 * documented templates, as catalogued by sisimai's lhost modules — to a reason.
 */

const header = (c: HintContext, name: string): string => c.headers.filter((h) => h.name === name).map((h) => h.value).join('\n');

// Microsoft Exchange 2003 prints MSEXCH:IMS diagnostics with a hexadecimal error code.
const EXCHANGE_2003_CODES: Record<string, BounceReason> = {
  '000C05A6': 'userunknown', // Unknown Recipient
  '000C0595': 'filtered', // Ambiguous Recipient
  '00010256': 'systemerror', // Too many recipients
  '000D06B5': 'systemerror', // No proxy for recipient
  '00120270': 'networkerror', // Too many hops
  '00050311': 'contenterror', // Conversion to Internet format failed
  '000502CC': 'contenterror',
  '000B0981': 'securityerror', // Server does not support AUTH
};

// Gmail's own bounces end the remote server's reply with "(state N)", the SMTP step it reached.
const GMAIL_STATES: Record<string, BounceReason> = {
  '6': 'failedstarttls', '9': 'failedstarttls', '8': 'systemerror', '12': 'norelaying', '13': 'blocked',
  '14': 'userunknown', '15': 'filtered', '17': 'filtered', '18': 'filtered',
};

// PowerMTA classifies every bounce into a documented category (X-PowerMTA-BounceCategory).
const POWERMTA_CATEGORIES: Record<string, BounceReason> = {
  'bad-mailbox': 'userunknown', 'bad-domain': 'hostunknown', 'bad-connection': 'networkerror', 'content-related': 'contenterror',
  'inactive-mailbox': 'suspend', 'invalid-sender': 'rejected', 'message-expired': 'expired', 'no-answer-from-host': 'networkerror',
  'policy-related': 'policyviolation', 'quota-issues': 'mailboxfull', 'relaying-issues': 'norelaying', 'routing-errors': 'networkerror',
  'spam-related': 'spamdetected', 'virus-related': 'virusdetected', 'protocol-errors': 'systemerror', 'bad-configuration': 'systemerror',
};

export const MTA_RULES: HintRule[] = [
  {
    name: 'PowerMTA',
    when: (c) => 'x-powermta-bouncecategory' in c.dsnExtensions,
    decide: (c) => POWERMTA_CATEGORIES[(c.dsnExtensions['x-powermta-bouncecategory'] ?? '').trim().toLowerCase()] ?? null,
  },
  {
    // Google Groups answers posts to a group that is gone or closed to the sender with a fixed
    // four-reason explanation (translated), always naming groups.google.com.
    name: 'Google Groups',
    report: (c) => /groups\.google\.com/i.test(c.text),
    when: (c) => /@googlegroups\.com$/i.test(c.address ?? ''),
    says: [[/[\s\S]/, 'rejected']],
  },
  {
    name: 'Gmail',
    report: (c) => /mailer-daemon@googlemail\.com/i.test(header(c, 'from')) && /technical details of|google tried to deliver/i.test(c.text),
    says: [
      [/DNS Error: Could not contact DNS servers|has been delayed|did not accept our requests to connect/i, 'expired'],
      [/DNS Error: (?:Domain name not found|DNS server returned answer with no data)/i, 'hostunknown'],
    ],
    decide: (c) => {
      const state = /\(state (\d+)\)/i.exec(c.block)?.[1];
      if (!state || !GMAIL_STATES[state]) return null;
      // A status code without a zero part (5.1.1, not 5.7.0) in the server's reply still wins over the state table.
      return c.status && !/\.0/.test(c.status) ? null : GMAIL_STATES[state];
    },
  },
  {
    name: 'Exchange 2003',
    when: (c) => /MSEXCH:/.test(c.block),
    decide: (c) => {
      const code = /MSEXCH:[^\n]*?\(([0-9A-F]{8})\)/.exec(c.block)?.[1];
      return code ? (EXCHANGE_2003_CODES[code] ?? null) : null;
    },
  },
  {
    // qmail and its clones; texts from qmail-remote.c, qmail-local.c and the qmail-ldap patch.
    name: 'qmail',
    report: (c) => /this is the qmail-send program|\(qmail \d+ invoked/i.test(c.text) || /\(qmail \d+ invoked/i.test(header(c, 'received')),
    says: [
      [/but my name was rejected/i, 'blocked'],
      [/Sorry, I couldn't find a mail exchanger or IP address/i, 'notaccept'],
      [/Sorry, I couldn't find any host /i, 'hostunknown'],
      [/disk quota exceeded/i, 'mailboxfull'],
      [/Message size exceeds fixed maximum message size:/i, 'mesgtoobig'],
      [/Sorry, I wasn't able to establish an SMTP connection|Although I'm listed as a best-preference MX/i, 'networkerror'],
      [/no mailbox here by that name/i, 'userunknown'],
      [/The message exeeded the maximum size the user accepts/i, 'exceedlimit'],
      [/Mailaddress is administrativ\w* disabled/i, 'suspend'],
      [/Unable to contact LDAP server|Temporary failure in LDAP lookup|Timeout while performing search on LDAP|bad interpreter: No such file or directory|Automatic homedir creator crashed/i, 'systemerror'],
      [/Requested action not taken: mailbox unavailable \(not enough free space\)/i, 'systemfull'],
    ],
  },
  {
    // Exim: message texts from its deliver.c, route.c, parser.c and transports.
    name: 'Exim',
    report: (c) => /This message was created automatically by mail delivery software|A message that you sent (?:could not be delivered|has not yet been delivered|was rejected by the local scan|contained one or more recipient addresses)|\(Exim \d/i.test(`${c.text}\n${header(c, 'received')}`),
    says: [
      [/\buser not found\b/i, 'userunknown'],
      [/all host address lookups failed permanently|all relevant MX records point to non-existent hosts|Unrouteable address/i, 'hostunknown'],
      [/mailbox is full|error: quota exceed/i, 'mailboxfull'],
      [/an MX or SRV record indicated no SMTP service|no host found for existing SMTP connection/i, 'notaccept'],
      [/angle-brackets nested too deep|expected word or "<"|domain missing in source-routed address|malformed address:/i, 'syntaxerror'],
      [/delivery to (?:file|pipe) forbidden|local delivery failed|LMTP error after /i, 'systemerror'],
      [/Too many "Received" headers/i, 'contenterror'],
      [/retry timeout exceeded|No action is required on your part|retry time not reached for any host after a long failure period|all hosts have been failing for a long time|Delay reason: |has been frozen|was frozen on arrival/i, 'expired'],
    ],
  },
  {
    // Zoho Mail's own reports ("ERROR_CODE :421", "[Status: Error, Address: <x>, ResponseCode 421, ...]").
    name: 'Zoho',
    report: (c) => /x-zohomail/i.test(c.headers.map((h) => h.name).join(' ')) || /ERROR_CODE :|\[Status: Error, Address:/.test(c.text),
    says: [[/Host not reachable/i, 'expired']],
  },
  {
    // au (KDDI) EZweb reports; X-SPASIGN: NG marks mail its spam filter refused.
    name: 'EZweb',
    report: (c) => /Postmaster@(?:ezweb\.ne\.jp|au\.com)/i.test(header(c, 'from')) || header(c, 'subject') === 'Mail System Error - Returned Mail',
    decide: (c) => {
      if (/^\s*NG\b/i.test(header(c, 'x-spasign'))) return 'filtered';
      if (/The user\(s\) account is (?:disabled|temporarily limited)/i.test(c.text)) return 'suspend';
      if (/The user\(s\) account is temporarily over quota/i.test(c.text)) return 'mailboxfull';
      if (/Your message was not delivered within /i.test(c.text)) return 'expired';
      return null;
    },
  },
  {
    // Verizon Wireless MMS gateways (vzwpix.com, vtext.com).
    name: 'Verizon',
    when: (c) => /vzwpix\.com|vtext\.com/i.test(`${header(c, 'from')} ${c.address ?? ''}`),
    says: [[/No valid recipients for this MM|Invalid user address|no such user/i, 'userunknown']],
  },
  {
    // DragonFly Mail Agent (dma): fixed strings from its net.c / dma.c.
    name: 'DragonFly',
    report: (c) => /DragonFly Mail Agent/i.test(c.text) || /DragonFly Mail Agent/i.test(header(c, 'received')),
    says: [[/could not deliver for the last/i, 'expired'], [/dns lookup failure: host /i, 'hostunknown']],
  },
  {
    // OpenSMTPD: failure strings from smtpd/mta.c and queue.c.
    name: 'OpenSMTPD',
    report: (c) => /This is the MAILER-DAEMON, please DO NOT REPLY/i.test(c.text) || /\(OpenSMTPD\)/.test(header(c, 'received')),
    says: [
      [/Envelope expired/i, 'expired'],
      [/Could not retrieve credentials/i, 'securityerror'],
      [/Invalid domain name|Domain does not exist/i, 'hostunknown'],
      [/Address family mismatch on destination MXs|All routes to destination blocked|bad DNS lookup error code|Could not retrieve source address|Loop detected|Network error on destination MXs|No valid route to (?:remote MX|destination)|Temporary failure in MX lookup/i, 'networkerror'],
      [/Destination seem to reject all mails|No MX found for (?:domain|destination)/i, 'notaccept'],
    ],
  },
  {
    // Ipswitch/Progress IMail Server ("Undeliverable Mail" reports).
    name: 'IMail',
    report: (c) => /^Undeliverable Mail/i.test(header(c, 'subject')) || /^<SMTP32 v/i.test(header(c, 'x-mailer')),
    says: [
      [/Unknown host/i, 'hostunknown'],
      [/Unknown user|Invalid final delivery userid/i, 'userunknown'],
      [/User mailbox exceeds allowed size/i, 'mailboxfull'],
      [/virus detected/i, 'virusdetected'],
      [/Blacklisted URL in message/i, 'spamdetected'],
      [/Delivery failed \d+ attempts/i, 'expired'],
    ],
  },
  {
    // IBM/HCL Domino and Lotus Notes name their directory in "not listed" failures.
    name: 'Domino/Notes',
    report: (c) => /Domino|Notes|Name & Address Book/i.test(c.text),
    says: [[/not listed in (?:the )?(?:Domino Directory|public Name & Address Book)/i, 'userunknown']],
  },
];
