import type { HintContext, HintRule } from './hint-rules.ts';
import type { BounceReason } from './types.ts';

/**
 * Reasons big mailbox providers encode in their own reply texts and error codes, from their
 * published postmaster pages (as catalogued by sisimai's rhost modules). A rule applies when the
 * recipient's domain, the remote MTA or the reply itself shows the provider.
 */

const domainOf = (a: string | null): string => (a ?? '').slice((a ?? '').lastIndexOf('@') + 1).toLowerCase();
const mentions = (c: HintContext, re: RegExp): boolean => re.test(domainOf(c.address)) || re.test(c.remoteMta ?? '') || re.test(c.block);
// Providers that write the report themselves: their name is in the report's From or in the
// Received header its own server added, not in the remote host.
const reportedBy = (c: HintContext, re: RegExp): boolean =>
  re.test(c.headers.filter((h) => h.name === 'from').map((h) => h.value).join(' ')) ||
  re.test(c.headers.find((h) => h.name === 'received')?.value ?? '');

// Orange / La Poste (FrancePTT) end their replies with a code like "LPN007_420" or "OFR_416".
const ORANGE_CODES: Record<string, BounceReason> = {
  '101': 'blocked', '102': 'blocked', '103': 'blocked', '104': 'toomanyconn', '305': 'securityerror', '401': 'authfailure',
  '402': 'securityerror', '403': 'rejected', '405': 'rejected', '415': 'rejected', '416': 'userunknown', '417': 'mailboxfull',
  '420': 'suspend', '421': 'rejected', '426': 'suspend', '505': 'systemerror', '506': 'spamdetected', '510': 'blocked',
  '514': 'mesgtoobig', '517': 'authfailure', '630': 'policyviolation', '999': 'blocked',
};

// GoDaddy (secureserver.net) ends its replies with an "IBnnn" code.
const GODADDY_CODES: Record<string, BounceReason> = {
  IB401: 'securityerror', IB501: 'notcompliantrfc', IB502: 'notcompliantrfc', IB506: 'rejected', IB508: 'authfailure',
  IB108: 'requireptr', IB212: 'spamdetected', IB705: 'virusdetected', IB605: 'toomanyconn', IB007: 'toomanyconn',
  IB101: 'speeding', IB110: 'blocked', IB111: 'blocked', IB112: 'blocked', IB113: 'blocked', IB504: 'speeding',
  IB510: 'speeding', IB607: 'speeding', IB103: 'badreputation', IB104: 'blocked', IB105: 'blocked', IB106: 'blocked',
};

const classOf = (c: HintContext): string => c.status?.[0] ?? (c.replyCode ? String(c.replyCode)[0] : '');

export const PROVIDER_RULES: HintRule[] = [
  {
    name: 'Orange/La Poste',
    decide: (c) => {
      const m = /\b(?:LPN|LPNAAA|OFR|OUK)\d*[_-]?(\d{3})\b/i.exec(c.block);
      if (m && ORANGE_CODES[m[1]]) return ORANGE_CODES[m[1]];
      return /spf\/dns de votre nom de domaine/i.test(c.block) ? 'authfailure' : null;
    },
  },
  {
    name: 'GoDaddy',
    decide: (c) => GODADDY_CODES[/\b(IB\d{3})\b/.exec(c.block)?.[1] ?? ''] ?? null,
    when: (c) => /\bIB\d{3}\b/.test(c.block) || mentions(c, /secureserver\.net/i),
    says: [
      [/rbl reject|spamhaus\.org\/query\/bl\?ip=/i, 'blocked'],
      [/has been in the queue too long|delivery timeout/i, 'expired'],
      [/account storage limit/i, 'mailboxfull'],
      [/message rejected for spam or virus content/i, 'spamdetected'],
      [/account disabled/i, 'suspend'],
      [/message is looping/i, 'systemerror'],
      [/recipient not found|account does not exist/i, 'userunknown'],
    ],
  },
  {
    // Google's documented SMTP errors (support.google.com/a/answer/3726730); replies end in "- gsmtp".
    name: 'Google',
    when: (c) => mentions(c, /google\.com|googlemail\.com|gmail\.com|gsmtp/i),
    says: [
      [/the spf record of the sending domain|senders to authenticate with (?:either spf or dkim|spf|dkim)|fails to pass spf checks|has an spf record with a hard fail|is not accepted due to domain's dmarc policy|fails to pass authentication checks|senders to authenticate their email with|aligned with either the authenticated spf or dkim|to add a dmarc record/i, 'authfailure'],
      [/very low reputation of the sending/i, 'badreputation'],
      [/ip not in whitelist for rcpt domain|try again later, closing connection|helo\/ehlo argument is invalid|empty helo\/ehlo argument|an unusual rate of (?:unsolicited )?mail/i, 'blocked'],
      [/exceeded google's message header size|bytes per individual header size|exceeds google's (?:header name|message header size) limit|limit attachments/i, 'exceedlimit'],
      [/exceeded google's message size limits|exceeds google's message size limit/i, 'mesgtoobig'],
      [/connection expired|timeout - closing connection/i, 'expired'],
      [/must issue a starttls command first|starttls may not be repeated|tls required for rcpt domain|senders to use tls\/ssl/i, 'failedstarttls'],
      [/inbox is out of storage space|is over quota|email quota exceeded/i, 'mailboxfull'],
      [/message exceeded 50 hops/i, 'networkerror'],
      [/mail relay denied|invalid credentials for relay|not authorized to send email directly to our servers/i, 'norelaying'],
      [/missing a valid address in the from: header|multiple addresses in from: header|is not rfc 5322 compliant|missing a valid message-id|unicode character in a disallowed header|encoded-word syntax is not permitted|mail message is malformed/i, 'notcompliantrfc'],
      [/illegal attachment on your message|content presents a potential security issue|has a policy that prohibited|sending messages with the same message-id/i, 'policyviolation'],
      [/mail sending denied|unauthenticated email is not accepted/i, 'rejected'],
      [/does not have a ptr record|have a ptr record, or the ptr record|ipv6 sending guidelines regarding ptr|does not match the ip address of the hostname/i, 'requireptr'],
      [/too many login attempts|no identity changes permitted|application-specific password required|log in (?:with|through) your web browser|username and password not accepted/i, 'securityerror'],
      [/nature of the content or the links within|likely unsolicited mail/i, 'spamdetected'],
      [/receiving mail too quickly|peak smtp relay limit|rate that prevents additional messages|daily (?:sending quota|user sending limit|smtp relay (?:sending )?limit) exceeded|this mail has been rate limited/i, 'speeding'],
      [/account that you tried to reach is (?:disabled|inactive)/i, 'suspend'],
      [/temporary system problem|server busy|multiple destination domains per transaction|mail server (?:has )?temporarily rejected|domain policy size per transaction/i, 'systemerror'],
      [/your message has too many recipients|too many recipients for this sender/i, 'toomanyconn'],
      [/the email account that you tried to reach does not exist|we weren't able to find the recipient domain|is not a valid rfc 5321 address/i, 'userunknown'],
    ],
  },
  {
    // Google Workspace relays DNS failures in its own words; 4xx means it will retry.
    name: 'Google Workspace',
    when: (c) => /responded with code NXDOMAIN|Domain name not found|had no relevant answers|Null MX|because the address couldn't be found/i.test(c.block),
    decide: (c) => {
      if (/because the address couldn't be found/i.test(c.block)) return 'userunknown';
      if (/Null MX/.test(c.block)) return 'notaccept';
      if (/responded with code NXDOMAIN|Domain name not found/i.test(c.block)) return classOf(c) === '5' ? 'hostunknown' : 'networkerror';
      return classOf(c) === '5' ? null : 'networkerror';
    },
  },
  {
    name: 'Tencent',
    when: (c) => mentions(c, /qq\.com|tencent/i),
    says: [
      [/spf check failed|dmarc check failed/i, 'authfailure'],
      [/suspected bounce attacks|suspected spam ip|connection denied/i, 'blocked'],
      [/message too large/i, 'mesgtoobig'],
      [/suspected spam|mail is rejected by recipients/i, 'rejected'],
      [/spam is embedded in the email|mail content denied/i, 'spamdetected'],
      [/mailbox unavailable or access denined|frequency of receiving messages is limited/i, 'speeding'],
      [/is a deactivated mailbox/i, 'suspend'],
      [/bad address syntax/i, 'syntaxerror'],
      [/ip frequency limited|domain frequency limited|sender frequency limited|connection frequency limited/i, 'toomanyconn'],
      [/mailbox not found/i, 'userunknown'],
    ],
  },
  {
    // Symantec/Broadcom Email Security.cloud (MessageLabs).
    name: 'MessageLabs',
    when: (c) => mentions(c, /messagelabs|symanteccloud/i) || reportedBy(c, /messagelabs/i),
    says: [
      [/domain authentication fail/i, 'authfailure'],
      [/Connection rejected by policy/i, 'badreputation'],
      [/mail rejected because your IP is in the PBL|your IP address (?:\(\S+\) )?has been/i, 'blocked'],
      [/Stray linefeeds in message/i, 'contenterror'],
      [/TLS\/SSLv3 Connection required/i, 'failedstarttls'],
      [/ as a relay, /i, 'norelaying'],
      [/550 Requested action aborted \[4\]|has detected that this message is not RFC 5322/i, 'notcompliantrfc'],
      [/sender envelope domain not allowed for sender IP address|your (?:domain|email address) has been (?:blocked|blacklisted)|your envelope sender is in my badmailfrom list/i, 'rejected'],
      [/Please turn on SMTP Authentication in your mail client/i, 'securityerror'],
      [/Message Filtered|filtered by Outbound scanning/i, 'spamdetected'],
      [/Too many recipients received this hour|too many messages/i, 'toomanyconn'],
      [/No such user|Invalid recipient|mailbox is not allowed/i, 'userunknown'],
    ],
  },
  {
    // Mimecast's documented SMTP error texts.
    name: 'Mimecast',
    when: (c) => mentions(c, /mimecast/i) || reportedBy(c, /mimecast/i),
    says: [
      [/(?:spf|dkim|dmarc) sender invalid - envelope rejected/i, 'authfailure'],
      [/internal resources are temporarily unavailable|local ct ip reputation/i, 'badreputation'],
      [/sender address blocked|recipient temporarily unavailable|ip temporarily blacklisted/i, 'blocked'],
      [/journal messages? past the expiration/i, 'expired'],
      [/this route requires (?:encryption|tls version|high-strength ciphers)|configuration is invalid for this certificate/i, 'failedstarttls'],
      [/maximum email size exceeded/i, 'mesgtoobig'],
      [/the incorrect hostname used for inbounds|mail loop detected/i, 'networkerror'],
      [/open relay (?:is )?not allowed/i, 'norelaying'],
      [/account inbounds disabled/i, 'notaccept'],
      [/anti-spoofing policy|content examination policy|host network,? not allowed/i, 'policyviolation'],
      [/administrative prohibition envelope blocked|envelope blocked - user (?:domain )?entry|manually blocked senders|blocked senders - block policy|block policy for envelope from/i, 'rejected'],
      [/incorrect authentication data|submitter failed to/i, 'securityerror'],
      [/unable to process (?:connection|command|an email)|message ended early/i, 'systemerror'],
      [/account service is temporarily unavailable|too many recipients|exceeding outbound thread limit/i, 'toomanyconn'],
      [/email rejected due to security policies/i, 'virusdetected'],
      [/invalid address|user unknown|invalid recipient/i, 'userunknown'],
    ],
  },
  {
    // Yahoo Inc. (yahoo.com, aol.com) postmaster error codes.
    name: 'Yahoo Inc.',
    // By the remote host (Yahoo's and AOL's MX names), as the codes below are Yahoo's MX replies.
    when: (c) => /yahoodns\.net|\.yahoo\.com\b|mx\.aol\.com|mail\.aol\.com/i.test(`${c.remoteMta ?? ''} ${c.block}`) || /@(?:yahoo|aol)\.[a-z.]+$/i.test(c.address ?? '') && /dd this user doesn't have a |is no longer valid|mailbox not found/i.test(c.block),
    says: [
      [/yahoo requires all senders to authenticate/i, 'authfailure'],
      [/because the ip is in spamhaus's list|not accepted from ip addresses on spamhaus xbl/i, 'blocked'],
      [/relaying denied for /i, 'norelaying'],
      [/headers are not rfc compliant/i, 'notcompliantrfc'],
      [/not accepted for policy reasons/i, 'policyviolation'],
      [/temporarily deferred due to unexpected volume or user complaints|due to unresolvable rfc\.5321|will be permanently deferred/i, 'rejected'],
      [/user is receiving mail too quickly/i, 'speeding'],
      [/ is no longer valid\.|this mailbox is disabled/i, 'suspend'],
      [/syntax error in parameters or arguments/i, 'syntaxerror'],
      [/max message per connection reached/i, 'toomanyconn'],
      [/dd this user doesn't have a |mailbox not found/i, 'userunknown'],
    ],
  },
  {
    // AOL's MX hosts.
    name: 'AOL',
    when: (c) => mentions(c, /(?:^|\.)aol\.(?:com|jp)|mx\.aol\.com/i) || reportedBy(c, /\.mx\.aol\.com/i),
    says: [[/Host or domain name not found/i, 'hostunknown'], [/type=MX: Malformed or unexpected name server reply/i, 'notaccept']],
  },
  {
    // KDDI au (ezweb.ne.jp): "550 <addr>: User unknown" is a real unknown user, while
    // "550 : User unknown" (no address) is its recipient-side filter.
    name: 'KDDI',
    when: (c) => /(?:ezweb\.ne\.jp|au\.com)$/i.test(domainOf(c.address)) || /ezweb\.ne\.jp|msmx\.au\.com/i.test(c.remoteMta ?? ''),
    says: [[/550 : user unknown/i, 'filtered'], [/>: user unknown/i, 'userunknown']],
  },
  {
    // Outlook.com / Hotmail consumer mailboxes.
    name: 'Outlook.com',
    when: (c) => /(?:hotmail|outlook|live|msn)\.[a-z.]+$/i.test(domainOf(c.address)) || /hotmail\.com|outlook\.com/i.test(c.remoteMta ?? ''),
    says: [
      [/the domain is not reachable/i, 'hostunknown'],
      [/Requested action not taken: mailbox unavailable/i, 'userunknown'],
    ],
  },
  {
    // Microsoft Exchange Server / Exchange Online (Microsoft 365) documented NDR texts
    // (learn.microsoft.com "Email non-delivery reports and SMTP errors in Exchange Online").
    name: 'Microsoft Exchange Online',
    when: (c) => mentions(c, /outlook\.com|protection\.outlook|exchangelabs|onmicrosoft|office365|microsoft/i) || /\b5\.\d\.\d{3}\b|RESOLVER\.|STOREDRV\./i.test(c.block),
    says: [
      [/must pass either spf or dkim validation|sender policy framework violation|does not pass dmarc verification|doesn't meet the required authentication level/i, 'authfailure'],
      [/temporarily rate limited due to ip reputation/i, 'badreputation'],
      [/access denied, bad helo|access denied, rejected by recipient|does not accept email over ipv6|access denied, banned sender|using customer block list|access denied, banned sending ip|part of their network is on our block list|must have a reverse dns record/i, 'blocked'],
      [/too many related errors|invalid characters|agent generated message depth exceeded|invalid message content/i, 'contenterror'],
      [/resolver\.rst\.recipsizelimit|message size exceeds fixed maximum message size|message too big for system/i, 'mesgtoobig'],
      [/queue expired; message expired|message expired/i, 'expired'],
      [/failed mta-sts validation|starttls is required to send mail|starttls-not-supported|certificate-expired|tlsa-invalid|dnssec-invalid|certificate-host-mismatch/i, 'failedstarttls'],
      [/smtpsend\.dns\.nonexistentdomain|hop count exceeded - possible mail loop|dns query failed|routing loop detected/i, 'networkerror'],
      [/tenantattribution; relay access denied|relay access denied|unable to relay/i, 'norelaying'],
      [/hosted tenant which has no mail-enabled subscriptions|missing or bad storedriver mdb properties/i, 'notaccept'],
      [/x-dg-ref header is too long|policy violation detected \(as345\)/i, 'policyviolation'],
      [/unknown sender address|access denied, bad outbound sender|sender was not authenticated|sender not in allowed-senders list|sender not authenticated for group|access denied, spam abuse detected|must be rfc 5322 section 3\.6\.2 compliant|client blocked from sending from unregistered domains/i, 'rejected'],
      [/cannot achieve exchange server authentication|client was not authenticated/i, 'securityerror'],
      [/content filter agent quarantined this message/i, 'spamdetected'],
      [/recipient thread limit exceeded|has exceeded the maximum number of connections|reached your daily limit for message recipients|submission quota exceeded|per hour message receive limit|the recipient has exceeded their limit for|has exceeded permitted limits within|tenant has exceeded threshold|traffic not accepted from this ip/i, 'speeding'],
      [/access denied, banned recipient|mailbox cannot be accessed/i, 'suspend'],
      [/send hello first/i, 'syntaxerror'],
      [/message failed to be replicated|suspiciousremoteservererror|server busy\. please try again later from|pfa agent busy|system incorrectly configured/i, 'systemerror'],
      [/insufficient system resources/i, 'systemfull'],
      [/resolver\.adr\.(?:ex)?recip(?:ient)?notfound|storedrv\.submit; invalid recipient address|recipient address reserved by rfc 2606|recipient not found by smtp address lookup|remote server returned unknown recipient or mailbox unavailable|invalid x\.400 address/i, 'userunknown'],
    ],
    decide: (c) => {
      // Outlook.com postmaster codes: RP-00x and SC-001/OU-002 are reputation, SC-003/004, DY-001, OU-001 blocks.
      const code = /\b(RP-00[123]|SC-00[1234]|DY-00[12]|OU-00[12])\b/.exec(c.block)?.[1];
      if (!code) return null;
      if (code.startsWith('RP') || code === 'SC-001' || code === 'OU-002') return 'badreputation';
      if (code === 'SC-002') return 'policyviolation';
      if (code === 'DY-002') return 'securityerror';
      return 'blocked';
    },
  },
  {
    // NTT DOCOMO answers "550 Unknown user" at RCPT for unknown users, and at DATA for its
    // recipient-side filters; 5.2.0 is its filter status.
    name: 'NTT DOCOMO',
    when: (c) => /docomo\.ne\.jp$/i.test(domainOf(c.address)) || /docomo\.ne\.jp/i.test(c.remoteMta ?? ''),
    says: [
      [/552 too much mail data/i, 'mailboxfull'],
      [/503 bad sequence of commands|504 command parameter not implemented/i, 'syntaxerror'],
      [/552 too many recipients/i, 'toomanyconn'],
    ],
    decide: (c) => {
      if (c.status === '5.1.1') return 'userunknown';
      if (c.status === '5.2.0') return 'filtered';
      if (/550 unknown user/i.test(c.block)) return c.command === 'DATA' ? 'rejected' : 'userunknown';
      return null;
    },
  },
];
