import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RoleName } from '../roles.ts';

/**
 * The model-backed roles' prompts, one versioned file per role in prompts/ (`respond.v1.md`): a
 * prompt is reviewed and changed like code, and each model call names on its trace the version it
 * was made with, so a change of behaviour can be traced to a change of prompt.
 *
 * A file has two parts, `<!-- system -->` then `<!-- user -->`; the user part is a template whose
 * `{{name}}` slots the role fills (prompts are checked at load: an unknown slot, or a required one
 * missing, is an error at start rather than a model shown a literal "{{thread}}"). Values are
 * substituted in one pass, so a value that itself contains "{{…}}" (a sender's words) stays text.
 * The highest version of each role is the one used.
 */

export interface Prompt {
  role: RoleName;
  /** "respond.v1": on every model call's trace. */
  version: string;
  system: string;
  user: string;
}

/** The slots each role's user template may use, and those it must (what the model cannot do without). */
export const PROMPT_SLOTS: Record<RoleName, { allowed: string[]; required: string[] }> = {
  research: { allowed: ['campaign', 'lead', 'history'], required: ['lead'] },
  personalize: { allowed: ['lead', 'notes', 'step', 'template', 'rendered', 'thread'], required: ['step', 'rendered'] },
  sequence: { allowed: ['lead', 'timezone', 'history', 'policy', 'now', 'proposal'], required: ['proposal'] },
  respond: { allowed: ['lead', 'allowed', 'thread', 'verdicts', 'agent_view'], required: ['allowed', 'verdicts', 'agent_view'] },
};

const ROLES = Object.keys(PROMPT_SLOTS) as RoleName[];
const FILE = /^(research|personalize|sequence|respond)\.v(\d+)\.md$/;
const SLOT = /\{\{\s*([a-z_]+)\s*\}\}/g;

export class PromptError extends Error {}

/** Parses one prompt file's text; throws PromptError naming the file and the problem. */
export function parsePrompt(role: RoleName, version: string, text: string, file = `${version}.md`): Prompt {
  const m = /^\s*<!--\s*system\s*-->\s*\n([\s\S]*?)\n\s*<!--\s*user\s*-->\s*\n([\s\S]*)$/.exec(text);
  if (!m) throw new PromptError(`${file}: expected a "<!-- system -->" part, then a "<!-- user -->" part`);
  const [system, user] = [m[1].trim(), m[2].trim()];
  if (!system || !user) throw new PromptError(`${file}: the ${system ? 'user' : 'system'} part is empty`);
  const { allowed, required } = PROMPT_SLOTS[role];
  const used = new Set([...user.matchAll(SLOT)].map((s) => s[1]));
  const unknown = [...used].filter((s) => !allowed.includes(s));
  if (unknown.length) throw new PromptError(`${file}: unknown slot(s) ${unknown.map((s) => `{{${s}}}`).join(', ')} (the ${role} role fills ${allowed.map((s) => `{{${s}}}`).join(', ')})`);
  const missing = required.filter((s) => !used.has(s));
  if (missing.length) throw new PromptError(`${file}: the user part must use ${missing.map((s) => `{{${s}}}`).join(', ')}`);
  if (new RegExp(SLOT.source).test(system)) throw new PromptError(`${file}: slots belong in the user part; the system part is fixed text`);
  return { role, version, system, user };
}

/** The newest prompt of every role in `dir`; throws PromptError when a role has none or a file is bad. */
export function loadPrompts(dir: string): Record<RoleName, Prompt> {
  const newest = new Map<RoleName, { n: number; file: string }>();
  for (const file of readdirSync(dir)) {
    const m = FILE.exec(file);
    if (!m) continue;
    const role = m[1] as RoleName;
    const n = Number(m[2]);
    if ((newest.get(role)?.n ?? -1) < n) newest.set(role, { n, file });
  }
  const out = {} as Record<RoleName, Prompt>;
  for (const role of ROLES) {
    const f = newest.get(role);
    if (!f) throw new PromptError(`${dir}: no prompt for the ${role} role (${role}.v1.md)`);
    out[role] = parsePrompt(role, `${role}.v${f.n}`, readFileSync(path.join(dir, f.file), 'utf8'), f.file);
  }
  return out;
}

export const PROMPTS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'prompts');

/**
 * The prompts shipped with Mailroom, read when this module loads (the server's start): a broken
 * prompt file stops the start with its name, instead of failing the first model-backed run.
 * Local files only; nothing touches the network on import.
 */
const SHIPPED = loadPrompts(PROMPTS_DIR);
export function shippedPrompts(): Record<RoleName, Prompt> {
  return SHIPPED;
}

/** The user template with its slots filled, in one pass (a value is never read as a template). */
export function renderPrompt(p: Prompt, values: Partial<Record<string, string>>): string {
  return p.user.replace(SLOT, (_, name: string) => values[name] ?? '(none)');
}
