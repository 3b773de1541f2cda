import { Core, type ClientOptions, type CoreRequest, type QueryValue, type RequestOptions } from './core.ts';
import { A2a } from './a2a.ts';
import { Domains, Limits, Suppressions, Tokens } from './admin.ts';
import { Campaigns, Runs } from './campaigns.ts';
import { Drafts } from './drafts.ts';
import { Events } from './events.ts';
import { Inboxes } from './inboxes.ts';
import { Messages } from './messages.ts';
import { Threads } from './threads.ts';
import { Webhooks } from './webhooks.ts';

/**
 * The Mailroom client.
 *
 *   const mr = new Mailroom({ baseUrl: 'http://127.0.0.1:8080', token: process.env.MAILROOM_TOKEN! });
 *   const inbox = await mr.inboxes.create({ username: 'research-agent' });
 *   for await (const m of mr.messages.list(inbox.id)) console.log(m.subject);
 *
 * Campaigns run on the server, one run per lead; follow them from here:
 *
 *   const c = await mr.campaigns.create(defineCampaign({ name: 'Q3', senders: [{ inbox: inbox.id }], steps, leads, escalate_to }), { clientId: 'q3' });
 *   (await mr.campaigns.get(c.id)).funnel;            // queued, sent per step, replied by class, bounced…
 *   for await (const run of mr.runs.list({ status: 'dead' })) await mr.runs.retry(run.id);
 */
export class Mailroom {
  readonly inboxes: Inboxes;
  readonly messages: Messages;
  readonly threads: Threads;
  readonly events: Events;
  readonly webhooks: Webhooks;
  readonly domains: Domains;
  readonly suppressions: Suppressions;
  readonly limits: Limits;
  readonly tokens: Tokens;
  readonly campaigns: Campaigns;
  readonly runs: Runs;
  /** Drafts a person approves before they go (`drafts:write` writes them; approving needs `messages:send`). */
  readonly drafts: Drafts;
  /** Agent-to-agent email: `request` (send, then the correlated reply's payload), `respond`, `requests()`. */
  readonly a2a: A2a;
  readonly #core: Core;

  constructor(options: ClientOptions) {
    const core = new Core(options);
    this.#core = core;
    this.inboxes = new Inboxes(core);
    this.messages = new Messages(core);
    this.threads = new Threads(core);
    this.events = new Events(core);
    this.webhooks = new Webhooks(core);
    this.domains = new Domains(core);
    this.suppressions = new Suppressions(core);
    this.limits = new Limits(core);
    this.tokens = new Tokens(core);
    this.campaigns = new Campaigns(core);
    this.runs = new Runs(core);
    this.drafts = new Drafts(core);
    this.a2a = new A2a(core, { inboxes: this.inboxes, messages: this.messages, events: this.events });
  }

  get baseUrl(): string {
    return this.#core.baseUrl;
  }

  /**
   * Any route, with the client's authentication, retries and errors: for what the SDK does not
   * wrap yet. POSTs are retried only when the connection could not be opened, unless `idempotent`.
   */
  async request<T = unknown>(
    method: CoreRequest['method'],
    path: string,
    init: { query?: Record<string, QueryValue>; body?: unknown; idempotent?: boolean } & RequestOptions = {},
  ): Promise<T> {
    const { query, body, idempotent, ...options } = init;
    const retry = idempotent === undefined ? undefined : idempotent ? 'idempotent' : 'unsafe';
    return (await this.#core.request<T>({ method, path, query, body, retry, options })).data;
  }
}
