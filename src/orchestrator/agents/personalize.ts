import type { Draft, PersonalizeAgent, PersonalizeInput } from '../roles.ts';
import { renderSubject, renderTemplate } from '../template.ts';

/**
 * The built-in personalization agent: the step's subject, text and HTML rendered as templates
 * (template.ts) with the lead, the research notes and the step. No model, no network.
 *
 * Variables: the lead's free-form `fields` spread at the top level ({{plan}}), then its named
 * properties (first_name, last_name, company, title, email, timezone) over them, so a named
 * property wins over a field of the same name but a CSV column `first_name` still fills in when the
 * property is absent; then `fields.*`, `crm.*`, `notes.*` (the research variables plus
 * `notes.summary`, which wins over a variable called summary: it is what the research agent
 * actually concluded) and `step.*` (number = index + 1, index, count). Those five names are
 * reserved: a field called `notes` is reachable only as {{fields.notes}}.
 *
 * The subject is rendered without escaping and collapsed to one line; the text is not escaped (it
 * is plain text); the HTML gets HTML-escaped values. A follow-up without a subject gets none: the
 * engine sends it as a reply in the thread ("Re: …").
 */

export interface RenderedStep {
  draft: Draft;
  /** Variables the step's templates use that had no value and no fallback (rendered empty). */
  missing: string[];
}

export function personalizeVars(input: Pick<PersonalizeInput, 'lead' | 'notes' | 'step'>): Record<string, unknown> {
  const { lead, notes, step } = input;
  const named: Record<string, string> = {};
  for (const k of ['email', 'first_name', 'last_name', 'company', 'title', 'timezone'] as const) {
    const v = lead[k];
    if (v !== undefined) named[k] = v;
  }
  return {
    ...lead.fields,
    ...named,
    fields: lead.fields,
    crm: lead.crm,
    notes: { ...notes.variables, summary: notes.summary },
    step: { number: step.index + 1, index: step.index, count: step.count },
  };
}

/** Render a step for a lead; throws (an agent failure, with the reason) when the result cannot be sent. */
export function renderStep(input: Pick<PersonalizeInput, 'lead' | 'notes' | 'step'>): RenderedStep {
  const vars = personalizeVars(input);
  const { step } = input;
  const where = `step ${step.index + 1}`;
  const missing = new Set<string>();
  const draft: Draft = { text: '' };

  if (step.subject !== undefined) {
    const s = renderSubject(step.subject, vars);
    s.missing.forEach((m) => missing.add(m));
    if (!s.text) throw new Error(`${where}: the subject renders empty${s.missing.length ? ` (no value for ${s.missing.join(', ')})` : ''}`);
    if (s.text.length > 998) throw new Error(`${where}: the subject renders to ${s.text.length} characters (at most 998)`);
    draft.subject = s.text;
  } else if (step.index === 0) {
    // The campaign schema already refuses this; a plug-in engine or API caller might not.
    throw new Error(`${where}: the first step needs a subject`);
  }

  const t = renderTemplate(step.text, vars, { escape: 'none' });
  t.missing.forEach((m) => missing.add(m));
  // Blank, not merely empty: a draft of spaces would pass the schema and reach the prospect.
  if (!t.text.trim()) throw new Error(`${where}: the text renders empty${t.missing.length ? ` (no value for ${t.missing.join(', ')})` : ''}`);
  if (t.text.length > 100_000) throw new Error(`${where}: the text renders to ${t.text.length} characters (at most 100,000)`);
  draft.text = t.text;

  if (step.html !== undefined) {
    const h = renderTemplate(step.html, vars, { escape: 'html' });
    h.missing.forEach((m) => missing.add(m));
    if (h.text.length > 500_000) throw new Error(`${where}: the HTML renders to ${h.text.length} characters (at most 500,000)`);
    if (h.text.trim()) draft.html = h.text;
  }
  return { draft, missing: [...missing] };
}

export const builtinPersonalize: PersonalizeAgent = {
  async personalize(input) {
    return renderStep(input).draft;
  },
};
