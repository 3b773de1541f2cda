import type { HintContext } from './hint-rules.ts';
import type { BounceReason } from './types.ts';

/**
 * Errors of local delivery agents (the program that writes into the mailbox after the MTA accepted
 * the message): their names appear in the diagnostic, and their messages say what went wrong.
 * An agent error that matches none of its known messages is a mailer error. Message texts from
 * the agents' sources, as catalogued by sisimai's lda package.
 */

interface Agent { name: string; marks: RegExp; says: [RegExp, BounceReason][] }

const AGENTS: Agent[] = [
  {
    name: 'dovecot',
    marks: /your message to <[^>]*> was automatically rejected:/i,
    says: [[/not enough disk space|quota exceeded/i, 'mailboxfull'], [/mailbox doesn't exist: /i, 'userunknown']],
  },
  {
    name: 'mail.local',
    marks: /mail\.local: /i,
    says: [
      [/disc quota exceeded|mailbox full or quota exceeded/i, 'mailboxfull'],
      [/temporary file write error/i, 'systemerror'],
      [/: invalid mailbox path|: unknown user:|: user missing home directory|: user unknown/i, 'userunknown'],
    ],
  },
  {
    name: 'procmail',
    marks: /procmail: |\/procmail /i,
    says: [[/quota exceeded while writing|user over quota/i, 'mailboxfull'], [/service unavailable/i, 'systemerror'], [/no space left to finish writing/i, 'systemfull']],
  },
  { name: 'maildrop', marks: /maildrop: /i, says: [[/maildir over quota\./i, 'mailboxfull'], [/cannot find system user|invalid user specified\./i, 'userunknown']] },
  {
    name: 'vpopmail',
    marks: /vdelivermail: /i,
    says: [
      [/user does not exist, but will deliver to /i, 'filtered'],
      [/domain is over quota|user is over quota/i, 'mailboxfull'],
      [/account is locked email bounced/i, 'suspend'],
      [/sorry, no mailbox here by that name\./i, 'userunknown'],
    ],
  },
  {
    name: 'vmailmgr',
    marks: /vdeliver: /i,
    says: [
      [/delivery failed due to system quota violation/i, 'mailboxfull'],
      [/invalid or unknown base user or domain|invalid or unknown virtual user|user name does not refer to a virtual user/i, 'userunknown'],
    ],
  },
];

export function localAgentHint(c: HintContext): BounceReason | null {
  // A local agent runs after the message was accepted: a rejection at RCPT or earlier is not its.
  if (c.command && c.command !== 'DATA') return null;
  const agent = AGENTS.find((a) => a.marks.test(c.block));
  if (!agent) return null;
  return agent.says.find(([re]) => re.test(c.block))?.[1] ?? 'mailererror';
}
