import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { SCOPES, type Scope } from '../auth/scopes.ts';
import { ApiError, request, ServerUnreachable } from './client.ts';
import { json, out, table } from './format.ts';

const USAGE = `mailroom — email for AI agents

Usage:
  mailroom serve                                   run SMTP + HTTP (embedded database unless DATABASE_URL is set)
  mailroom inbox create [--username U] [--domain D] [--display-name N] [--client-id C]
  mailroom inbox list [--limit N]
  mailroom inbox delete <inbox_id>
  mailroom messages list <inbox_id> [--thread T] [--limit N]
  mailroom messages show <message_id> [--raw]
  mailroom token create --scope S [--scope S …] [--inbox ID …] [--name N]
  mailroom token list
  mailroom token revoke <token_id>
  mailroom console                                 a one-time sign-in link for the web console (admin token)
  mailroom domain add <domain>                     DKIM key + the DNS records to publish
  mailroom domain list | show <domain> | verify <domain> | resume <domain>
  mailroom send <inbox_id> --to A [--to A …] [--subject S] [--text T] [--idempotency-key K]
  mailroom mcp                                     MCP server on stdio (needs MAILROOM_TOKEN; the tools call MAILROOM_URL)
  mailroom campaign create <file.yaml|json> [--leads leads.csv] [--map field:Header,…] [--client-id C]
  mailroom campaign list | show <id> | pause <id> | resume <id>
  mailroom campaign leads <id> <leads.csv> [--map field:Header,…]
  mailroom campaign runs <id> [--status S] [--limit N]
  mailroom trace <run_id>                          a run's timeline: agent calls, handoffs, sends, bounces, replies
  mailroom dlq list | retry <run_id>               dead-lettered runs (an agent kept failing)
  mailroom demo                                    a 50-lead, 3-step campaign against a simulated world, in under a minute

Every command but serve talks to a running server: MAILROOM_URL (default http://127.0.0.1:8080) with
MAILROOM_TOKEN (default: $MAILROOM_DATA_DIR/admin-token). Add --json for machine-readable output.
Scopes: ${SCOPES.join(', ')}
`;

const OPTIONS = {
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
  username: { type: 'string' },
  domain: { type: 'string' },
  'display-name': { type: 'string' },
  'client-id': { type: 'string' },
  limit: { type: 'string' },
  thread: { type: 'string' },
  raw: { type: 'boolean' },
  scope: { type: 'string', multiple: true },
  inbox: { type: 'string', multiple: true },
  name: { type: 'string' },
  to: { type: 'string', multiple: true },
  subject: { type: 'string' },
  text: { type: 'string' },
  'idempotency-key': { type: 'string' },
  leads: { type: 'string' },
  map: { type: 'string' },
  status: { type: 'string' },
} satisfies ParseArgsConfig['options'];

class UsageError extends Error {}

/** A domain and the records to publish, as a person reads them. */
function domainText(d: any): string {
  const v = d.verification ?? {};
  return [
    `${d.name}  ${d.verified ? 'verified' : 'not verified'}${d.paused_at ? `  PAUSED: ${d.pause_reason}` : ''}`,
    '',
    'Publish these DNS records:',
    ...d.records.map((r: any) => `  ${r.type.padEnd(3)} ${r.name}${r.priority !== undefined ? `  ${r.priority}` : ''}  ${r.value}${v[r.purpose === 'inbound' ? 'mx' : r.purpose] ? `   [${v[r.purpose === 'inbound' ? 'mx' : r.purpose]}]` : ''}`),
    '',
    `Then: mailroom domain verify ${d.name}`,
  ].join('\n');
}

const positionalAfter = (positionals: string[], i: number): string | undefined => positionals[i];

function need(v: string | undefined, what: string): string {
  if (!v) throw new UsageError(`missing ${what}`);
  return v;
}

function limitOf(v: string | undefined): string {
  if (v === undefined) return '';
  if (!/^\d+$/.test(v)) throw new UsageError('--limit must be a number');
  return `limit=${v}`;
}

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    process.stderr.write(`mailroom: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values: o, positionals: [group, action, arg] } = parsed;
  if (o.version) {
    out(JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version);
    return 0;
  }
  if (o.help || !group || group === 'help') {
    out(USAGE);
    return group || o.help ? 0 : 2;
  }
  try {
    // `send` and `trace` take their id as the next word; every other command is a group and an action.
    switch (group === 'send' || group === 'trace' || group === 'demo' || group === 'console' ? group : `${group} ${action ?? ''}`.trim()) {
      case 'serve':
        // Loaded on demand: the client commands stay quick to start (no database modules).
        return await (await import('./serve.ts')).serveCommand();

      case 'mcp':
        // stdout is the MCP channel from here on: nothing else may be written to it.
        return (await import('../mcp/stdio.ts')).mcpCommand() ?? 0;

      case 'inbox create': {
        const inbox = await request('POST', '/v1/inboxes', {
          ...(o.username ? { username: o.username } : {}),
          ...(o.domain ? { domain: o.domain } : {}),
          ...(o['display-name'] ? { display_name: o['display-name'] } : {}),
          ...(o['client-id'] ? { client_id: o['client-id'] } : {}),
        });
        if (o.json) json(inbox);
        else out(`${inbox.address}  (${inbox.id})`);
        return 0;
      }
      case 'inbox list': {
        const page = await request('GET', `/v1/inboxes?${limitOf(o.limit)}`);
        if (o.json) json(page);
        else out(table(page.data, ['id', 'address', 'display_name', 'created_at']));
        return 0;
      }
      case 'inbox delete': {
        await request('DELETE', `/v1/inboxes/${encodeURIComponent(need(arg, 'inbox id'))}`);
        if (o.json) json({ deleted: arg });
        else out(`deleted ${arg}`);
        return 0;
      }

      case 'messages list': {
        const q = [limitOf(o.limit), o.thread ? `thread_id=${encodeURIComponent(o.thread)}` : ''].filter(Boolean).join('&');
        const page = await request('GET', `/v1/inboxes/${encodeURIComponent(need(arg, 'inbox id'))}/messages?${q}`);
        if (o.json) json(page);
        else out(table(page.data.map((m: any) => ({ ...m, from: m.from?.address ?? '', attachments: m.attachments.length })), ['id', 'received_at', 'from', 'subject', 'attachments']));
        return 0;
      }
      case 'messages show': {
        const id = encodeURIComponent(need(arg, 'message id'));
        if (o.raw) {
          process.stdout.write(await request<Buffer>('GET', `/v1/messages/${id}/raw`, undefined, { raw: true }));
          return 0;
        }
        const m = await request('GET', `/v1/messages/${id}`);
        if (o.json) json(m);
        else {
          out([
            `From:     ${m.from ? `${m.from.name ? `${m.from.name} ` : ''}<${m.from.address}>` : '(none)'}`,
            `To:       ${m.to.map((a: any) => a.address).join(', ')}`,
            ...(m.cc.length ? [`Cc:       ${m.cc.map((a: any) => a.address).join(', ')}`] : []),
            `Subject:  ${m.subject ?? ''}`,
            `Date:     ${m.date ?? ''}  (received ${m.received_at})`,
            `Thread:   ${m.thread_id}`,
            ...m.attachments.map((a: any) => `Attached: ${a.filename ?? '(unnamed)'}  ${a.content_type}  ${a.size} bytes  ${a.id}`),
            ...(m.parse_warnings.length ? [`Warnings: ${m.parse_warnings.join('; ')}`] : []),
            '',
            m.text ?? '(no text part)',
          ].join('\n'));
        }
        return 0;
      }

      case 'token create': {
        const scopes = (o.scope ?? []) as string[];
        if (!scopes.length) throw new UsageError(`--scope is required (one or more of ${SCOPES.join(', ')})`);
        const bad = scopes.filter((s) => !SCOPES.includes(s as Scope));
        if (bad.length) throw new UsageError(`unknown scope ${bad.join(', ')}; valid: ${SCOPES.join(', ')}`);
        const body = { scopes, ...(o.inbox?.length ? { inbox_ids: o.inbox } : {}), ...(o.name ? { name: o.name } : {}) };
        let created;
        try {
          created = await request('POST', '/v1/tokens', body);
        } catch (err) {
          // No server running: an embedded data directory can be written directly (it is not locked).
          if (!(err instanceof ServerUnreachable) || process.env.MAILROOM_URL) throw err;
          created = await (await import('./offline.ts')).createTokenOffline(body as any);
        }
        if (o.json) json(created);
        else out(`${created.token}\n\n(${created.id}; scopes ${created.scopes.join(', ')}${created.inbox_ids ? `; inboxes ${created.inbox_ids.join(', ')}` : ''}). The secret is shown only now.`);
        return 0;
      }
      case 'console': {
        const link = await request<{ url: string; expires_at: string }>('POST', '/v1/signin_links');
        if (o.json) json(link);
        else out(`Open this link to sign in to the console (works once, until ${link.expires_at}):\n  ${link.url}`);
        return 0;
      }
      case 'token list': {
        const page = await request('GET', '/v1/tokens');
        if (o.json) json(page);
        else out(table(page.data, ['id', 'name', 'prefix', 'scopes', 'inbox_ids', 'last_used_at', 'revoked_at']));
        return 0;
      }
      case 'token revoke': {
        const t = await request('DELETE', `/v1/tokens/${encodeURIComponent(need(arg, 'token id'))}`);
        if (o.json) json(t);
        else out(`revoked ${t.id}`);
        return 0;
      }
      case 'domain add':
      case 'domain show':
      case 'domain verify':
      case 'domain resume': {
        const name = need(arg, 'domain');
        const d = action === 'add' ? await request('POST', '/v1/domains', { name })
          : action === 'show' ? await request('GET', `/v1/domains/${encodeURIComponent(name)}`)
          : await request('POST', `/v1/domains/${encodeURIComponent(name)}/${action}`);
        if (o.json) json(d);
        else out(domainText(d));
        return 0;
      }
      case 'domain list': {
        const list = await request('GET', '/v1/domains');
        if (o.json) json(list);
        else out(table(list.data.map((d: any) => ({ ...d, paused: d.paused_at ? 'paused' : '' })), ['name', 'dkim_selector', 'verified', 'paused', 'created_at']));
        return 0;
      }

      case 'send': {
        // `mailroom send <inbox_id> …`: the positional after "send" is the inbox.
        const inboxId = need(action, 'inbox id');
        if (!o.to?.length) throw new UsageError('--to is required');
        const sent = await request('POST', `/v1/inboxes/${encodeURIComponent(inboxId)}/messages`, {
          to: o.to, ...(o.subject ? { subject: o.subject } : {}), ...(o.text ? { text: o.text } : {}),
          ...(o['idempotency-key'] ? { idempotency_key: o['idempotency-key'] } : {}),
        });
        if (o.json) json(sent);
        else out(`${sent.id} ${sent.delivery.status}${sent.delivery.scheduled_at && new Date(sent.delivery.scheduled_at) > new Date() ? ` (scheduled ${sent.delivery.scheduled_at})` : ''}`);
        return 0;
      }
      case 'campaign create': {
        const { readCampaignFile, readLeadsFile } = await import('./campaign-files.ts');
        const spec = await readCampaignFile(need(arg, 'campaign file'));
        if (o.leads) {
          const { leads, problems } = await readLeadsFile(o.leads, o.map);
          for (const p of problems) process.stderr.write(`${o.leads}:${p.row}: ${p.message} (row skipped)\n`);
          spec.leads = [...(spec.leads ?? []), ...leads];
        }
        const c = await request('POST', '/v1/campaigns', { ...spec, ...(o['client-id'] ? { client_id: o['client-id'] } : {}) });
        if (o.json) json(c);
        else out(`${c.id}  ${c.name}: ${c.funnel.leads} leads, ${c.steps} steps, ${c.status}\nFollow it: mailroom campaign show ${c.id}`);
        return 0;
      }
      case 'campaign list': {
        const page = await request('GET', `/v1/campaigns?${limitOf(o.limit)}`);
        if (o.json) json(page);
        else out(table(page.data.map((c: any) => ({ ...c, leads: c.funnel.leads, sent: c.funnel.sent_per_step.join('/'), replied: Object.values(c.funnel.replied as Record<string, number>).reduce((a, b) => a + b, 0) })), ['id', 'name', 'status', 'leads', 'sent', 'replied', 'created_at']));
        return 0;
      }
      case 'campaign show':
      case 'campaign pause':
      case 'campaign resume': {
        const id = encodeURIComponent(need(arg, 'campaign id'));
        const c = action === 'show' ? await request('GET', `/v1/campaigns/${id}`) : await request('POST', `/v1/campaigns/${id}/${action}`);
        if (o.json) json(c);
        else out((await import('./campaign-files.ts')).campaignText(c));
        return 0;
      }
      case 'campaign leads': {
        const { readLeadsFile } = await import('./campaign-files.ts');
        const file = need(positionalAfter(parsed.positionals, 3), 'leads file');
        const { leads, problems } = await readLeadsFile(file, o.map);
        const r = await request('POST', `/v1/campaigns/${encodeURIComponent(need(arg, 'campaign id'))}/leads`, { leads });
        if (o.json) json({ ...r, problems: [...problems, ...r.problems] });
        else out([`added ${r.added}`, ...r.skipped.map((s: any) => `skipped ${s.email}: ${s.reason}`), ...problems.map((p) => `${file}:${p.row}: ${p.message}`)].join('\n'));
        return 0;
      }
      case 'campaign runs': {
        const q = [limitOf(o.limit), o.status ? `status=${encodeURIComponent(o.status)}` : ''].filter(Boolean).join('&');
        const page = await request('GET', `/v1/campaigns/${encodeURIComponent(need(arg, 'campaign id'))}/runs?${q}`);
        if (o.json) json(page);
        else out(table(page.data.map((r: any) => ({ ...r, email: r.lead.email })), ['id', 'email', 'status', 'stage', 'steps_sent', 'outcome', 'reply_class', 'send_at']));
        return 0;
      }
      case 'trace': {
        const t = await request('GET', `/v1/runs/${encodeURIComponent(need(action, 'run id'))}/trace`);
        if (o.json) json(t);
        else out((await import('./campaign-files.ts')).traceText(t));
        return 0;
      }
      case 'dlq list': {
        const page = await request('GET', `/v1/runs?status=dead&${limitOf(o.limit)}`);
        if (o.json) json(page);
        else out(table(page.data.map((r: any) => ({ ...r, email: r.lead.email })), ['id', 'campaign_id', 'email', 'stage', 'attempts', 'last_error']));
        return 0;
      }
      case 'dlq retry': {
        const r = await request('POST', `/v1/runs/${encodeURIComponent(need(arg, 'run id'))}/retry`);
        if (o.json) json(r);
        else out(`${r.id} ${r.status} (stage ${r.stage})`);
        return 0;
      }
      case 'demo':
        return await (await import('./demo.ts')).demoCommand({ json: !!o.json });
      default:
        throw new UsageError(`unknown command "${[group, action].filter(Boolean).join(' ')}"`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`mailroom: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    if ((err as Error)?.name === 'CampaignFileError') {
      process.stderr.write(`mailroom: the campaign file has problems:\n${(err as Error).message}\n`);
      return 2;
    }
    if (err instanceof ApiError) {
      process.stderr.write(`mailroom: ${err.message} (${err.code}, HTTP ${err.status})\n`);
      return 1;
    }
    throw err;
  }
}
