import { parse as parseCsv } from 'csv-parse/sync';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import { z } from 'zod';
import { CampaignSpec, Lead, type LeadInput } from './spec.ts';

/**
 * Campaign definitions from text: a YAML or JSON file checked against the one schema (spec.ts) with
 * every problem reported at its line, and leads from a CSV export with a column mapping.
 *
 * Positions come from the `yaml` library's document model for both formats — JSON is a subset of
 * YAML 1.2, so one tree walk maps a schema issue's path to the line of the offending node whichever
 * the author wrote. JSON is still *parsed* by JSON.parse, the authority on what is valid JSON (YAML
 * would accept a trailing comma or a bare word), and YAML uses the 1.2 core schema, where `09:00` is
 * a string and `yes` is not a boolean — the YAML 1.1 surprises a send window would otherwise hit.
 */

// ---------------------------------------------------------------------------------------------
// Problems
// ---------------------------------------------------------------------------------------------

/** A schema problem: where in the campaign (`steps[1].delay_business_days`) and what. */
export interface CampaignProblem {
  path: string;
  message: string;
}

/** A problem in a campaign file, at its 1-based line and column when known. */
export interface CampaignFileProblem extends CampaignProblem {
  line: number | null;
  column: number | null;
}

function formatProblem(file: string, p: CampaignFileProblem): string {
  const where = p.line === null ? file : `${file}:${p.line}:${p.column ?? 1}`;
  return p.path ? `${where}: ${p.path}: ${p.message}` : `${where}: ${p.message}`;
}

export class CampaignFileError extends Error {
  readonly problems: CampaignFileProblem[];
  readonly filename: string;
  constructor(problems: CampaignFileProblem[], filename: string) {
    super(problems.map((p) => formatProblem(filename, p)).join('\n'));
    this.name = 'CampaignFileError';
    this.problems = problems;
    this.filename = filename;
  }
}

/** `steps[1].delay_business_days`: how people (and jq) name a place in a document. */
function pathString(path: readonly PropertyKey[]): string {
  let s = '';
  for (const seg of path) {
    if (typeof seg === 'number') s += `[${seg}]`;
    else if (/^[A-Za-z_][\w-]*$/.test(String(seg))) s += s ? `.${String(seg)}` : String(seg);
    else s += `[${JSON.stringify(String(seg))}]`;
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Schema issues → problems
// ---------------------------------------------------------------------------------------------

/** A problem still holding its path as segments; `atKey`: point at the last segment's key, not its value. */
interface RawProblem {
  at: PropertyKey[];
  atKey: boolean;
  message: string;
}

/** "required (expected string)" beats zod's "expected string, received undefined" for a key left out. */
const errorMap: z.core.$ZodErrorMap = (iss) => (iss.code === 'invalid_type' && iss.input === undefined ? `required (expected ${iss.expected})` : undefined);

type SchemaNode = { def: { type: string; innerType?: SchemaNode; in?: SchemaNode; shape?: Record<string, SchemaNode>; element?: SchemaNode; valueType?: SchemaNode } };

/** The keys the schema allows at `path` (through defaults, optionals, arrays and records), for "did you mean". */
function allowedKeys(path: readonly PropertyKey[]): string[] {
  const unwrap = (s: SchemaNode | undefined): SchemaNode | undefined => {
    while (s && (s.def.innerType || s.def.in)) s = s.def.innerType ?? s.def.in;
    return s;
  };
  let s = unwrap(CampaignSpec as unknown as SchemaNode);
  for (const seg of path) {
    if (!s) return [];
    s = unwrap(s.def.type === 'object' ? s.def.shape?.[String(seg)] : s.def.type === 'array' ? s.def.element : s.def.type === 'record' ? s.def.valueType : undefined);
  }
  return s?.def.type === 'object' ? Object.keys(s.def.shape ?? {}) : [];
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

function unknownKeyMessage(key: string, allowed: string[]): string {
  const norm = (s: string) => s.toLowerCase().replace(/[^a-z0-9]/g, '');
  const scored = allowed.map((k) => ({ k, d: norm(k) === norm(key) ? 0 : editDistance(key.toLowerCase(), k) })).sort((x, y) => x.d - y.d);
  const best = scored[0];
  if (best && best.d <= Math.max(2, Math.floor(key.length / 4))) return `unknown key "${key}" (did you mean "${best.k}"?)`;
  return allowed.length ? `unknown key "${key}" (allowed here: ${allowed.join(', ')})` : `unknown key "${key}"`;
}

function issueProblems(issues: readonly z.core.$ZodIssue[]): RawProblem[] {
  const out: RawProblem[] = [];
  for (const iss of issues) {
    if (iss.code === 'unrecognized_keys') {
      const allowed = allowedKeys(iss.path);
      for (const key of iss.keys) out.push({ at: [...iss.path, key], atKey: true, message: unknownKeyMessage(key, allowed) });
    } else {
      out.push({ at: [...iss.path], atKey: false, message: iss.message.replace(/^Invalid input: /, '') });
    }
  }
  return out;
}

function check(input: unknown): { ok: true; spec: CampaignSpec } | { ok: false; raw: RawProblem[] } {
  const r = CampaignSpec.safeParse(input, { error: errorMap });
  return r.success ? { ok: true, spec: r.data } : { ok: false, raw: issueProblems(r.error.issues) };
}

/** Validate a campaign given as data (the API path): the spec with defaults, or every problem. */
export function validateCampaign(input: unknown): { ok: true; spec: CampaignSpec } | { ok: false; problems: CampaignProblem[] } {
  const r = check(input);
  return r.ok ? r : { ok: false, problems: r.raw.map((p) => ({ path: pathString(p.at), message: p.message })) };
}

// ---------------------------------------------------------------------------------------------
// Positions
// ---------------------------------------------------------------------------------------------

type Position = { line: number | null; column: number | null };
const NOWHERE: Position = { line: null, column: null };

function positionOf(lc: LineCounter, offset: number | undefined): Position {
  if (offset === undefined) return NOWHERE;
  const { line, col } = lc.linePos(offset);
  return { line, column: col };
}

/**
 * The position of the node at `path`: the value (or with `atKey` the key) when it is there; the
 * nearest enclosing collection when it is not — a missing required key is reported at the mapping
 * that should hold it.
 */
function locate(doc: Document, lc: LineCounter, path: readonly PropertyKey[], atKey: boolean): Position {
  let node: unknown = doc.contents;
  if (!node) return { line: 1, column: 1 };
  for (let i = 0; i < path.length; i++) {
    if (isAlias(node)) node = node.resolve(doc);
    const here = positionOf(lc, (node as Node | undefined)?.range?.[0]);
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(path[i]));
      if (!pair) return here;
      const last = i === path.length - 1;
      // An empty value (`subject:`) has a zero-width null node at the line's end or the next line: the key is clearer.
      const emptyValue = !pair.value || (isScalar(pair.value) && pair.value.value === null && !pair.value.source);
      if ((last && atKey) || emptyValue) {
        const key = positionOf(lc, (pair.key as Node | null)?.range?.[0]);
        return key.line === null ? here : key;
      }
      node = pair.value;
    } else if (isSeq(node)) {
      const item = typeof path[i] === 'number' ? node.items[path[i] as number] : undefined;
      if (!item) return here;
      node = item;
    } else {
      return here;
    }
  }
  return positionOf(lc, (node as Node | undefined)?.range?.[0]);
}

function lineColumn(text: string, offset: number): Position {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return { line, column: offset - (before.lastIndexOf('\n') + 1) + 1 };
}

/**
 * Where JSON text first goes wrong, for the few JSON.parse messages that carry no position
 * ("Unexpected token '}', … is not valid JSON" after a misspelt literal). A minimal recursive
 * scanner of the JSON grammar; returns -1 if the text is valid, null if it nests too deep to scan.
 */
function jsonErrorOffset(s: string): number | null {
  let i = 0;
  const fail = (): never => {
    throw i;
  };
  const ws = () => {
    while (s[i] === ' ' || s[i] === '\t' || s[i] === '\n' || s[i] === '\r') i++;
  };
  const expect = (c: string) => (s[i] === c ? i++ : fail());
  const str = () => {
    expect('"');
    for (;;) {
      const c = s[i];
      if (c === undefined || c < ' ') fail();
      i++;
      if (c === '"') return;
      if (c === '\\') {
        if (s[i] === 'u') {
          i++;
          for (let k = 0; k < 4; k++) if (/[0-9a-fA-F]/.test(s[i] ?? '')) i++;
          else fail();
        } else if ('"\\/bfnrt'.includes(s[i] ?? 'x')) i++;
        else fail();
      }
    }
  };
  const seq = (close: string, item: () => void) => {
    i++;
    ws();
    if (s[i] === close) return void i++;
    for (;;) {
      item();
      ws();
      if (s[i] === ',') i++;
      else return void expect(close);
    }
  };
  const value = (): void => {
    ws();
    const c = s[i];
    if (c === '{') {
      return seq('}', () => {
        ws();
        str();
        ws();
        expect(':');
        value();
      });
    }
    if (c === '[') return seq(']', value);
    if (c === '"') return str();
    const num = /-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
    num.lastIndex = i;
    if (num.test(s)) return void (i = num.lastIndex);
    // A misspelt literal fails at its first letter: the word is the mistake, not the letter after it.
    for (const lit of ['true', 'false', 'null']) if (s.startsWith(lit, i)) return void (i += lit.length);
    fail();
  };
  try {
    value();
    ws();
    return i < s.length ? i : -1;
  } catch (e) {
    if (typeof e === 'number') return e;
    if (e instanceof RangeError) return null;
    throw e;
  }
}

function jsonSyntaxProblem(text: string, err: Error): CampaignFileProblem {
  const m = /^(.*?) in JSON at position (\d+)/.exec(err.message);
  let message = m ? m[1] : err.message.replace(/, (\.\.\.)?".*"(\.\.\.)? is not valid JSON$/s, '');
  let offset: number | null = m ? Number(m[2]) : null;
  if (offset === null) {
    if (/Unexpected end of JSON input/.test(err.message)) offset = text.trimEnd().length;
    else {
      const o = jsonErrorOffset(text);
      offset = o === null || o < 0 ? null : o;
      // V8 names the token after a bad word ("Unexpected token '}'" for `tru}`); name the word instead.
      if (offset !== null) {
        const word = /[\w$.+-]+/y;
        word.lastIndex = offset;
        const w = word.exec(text)?.[0];
        if (w) message = `${JSON.stringify(w)} is not a JSON value (strings need double quotes; the literals are true, false and null)`;
      }
    }
  }
  if (!message) message = err.message;
  return { path: '', message: `JSON syntax: ${message}`, ...(offset === null ? NOWHERE : lineColumn(text, offset)) };
}

// ---------------------------------------------------------------------------------------------
// Campaign files
// ---------------------------------------------------------------------------------------------

/**
 * Parse and validate a campaign file. The format is the extension's (.yaml/.yml or .json); without
 * one, text starting with `{` or `[` is JSON and anything else YAML. Throws CampaignFileError with
 * every problem found at once — syntax errors alone when the text does not parse, since a schema
 * check of half a document would only add noise.
 */
export function parseCampaignFile(text: string, filename?: string): CampaignSpec {
  const file = filename ?? 'campaign';
  const src = text.replace(/^\uFEFF/, '');
  const ext = /\.(ya?ml|json)$/i.exec(filename ?? '')?.[1].toLowerCase();
  const json = ext ? ext === 'json' : /^\s*[[{]/.test(src);
  const lc = new LineCounter();
  // uniqueKeys: a key given twice is a mistake in either format (JSON.parse would let the last win silently).
  const doc = parseDocument(src, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const yamlErrors = doc.errors.map((e): CampaignFileProblem => ({
    path: '',
    message: e.code === 'DUPLICATE_KEY' ? 'this key is given twice in the same mapping (the later one would silently win)' : `YAML syntax: ${e.message}`,
    ...positionOf(lc, e.pos[0]),
  }));

  let data: unknown;
  if (json) {
    try {
      data = JSON.parse(src);
    } catch (e) {
      throw new CampaignFileError([jsonSyntaxProblem(src, e as Error)], file);
    }
    // Valid JSON that YAML still objects to can only be a duplicate key (or a YAML limit): keep those.
    const dup = doc.errors.flatMap((e, i) => (e.code === 'DUPLICATE_KEY' ? [yamlErrors[i]] : []));
    if (dup.length) throw new CampaignFileError(dup, file);
  } else {
    if (yamlErrors.length) throw new CampaignFileError(yamlErrors, file);
    try {
      // maxAliasCount bounds "billion laughs" alias expansion.
      data = doc.toJS({ maxAliasCount: 100 });
    } catch (e) {
      throw new CampaignFileError([{ path: '', message: `YAML: ${(e as Error).message}`, line: null, column: null }], file);
    }
  }

  const r = check(data);
  if (r.ok) return r.spec;
  throw new CampaignFileError(r.raw.map((p) => ({ path: pathString(p.at), message: p.message, ...locate(doc, lc, p.at, p.atKey) })), file);
}

// ---------------------------------------------------------------------------------------------
// Leads from CSV
// ---------------------------------------------------------------------------------------------

/** A CSV row that could not become a lead: its 1-based row (the header is row 1) and, when known, the lead field. */
export interface LeadRowProblem {
  row: number;
  field?: string;
  message: string;
}

const NAMED_FIELDS = ['email', 'first_name', 'last_name', 'company', 'title', 'timezone'] as const;
type NamedField = (typeof NAMED_FIELDS)[number];

/** Header spellings recognised without a mapping, compared with case, spaces and punctuation removed. */
const HEADER_ALIASES: Record<NamedField, string[]> = {
  email: ['email', 'emailaddress', 'mail', 'workemail', 'businessemail', 'emailaddr'],
  first_name: ['firstname', 'first', 'givenname', 'forename', 'fname'],
  last_name: ['lastname', 'last', 'surname', 'familyname', 'lname'],
  company: ['company', 'companyname', 'organization', 'organisation', 'org', 'account', 'accountname', 'employer'],
  title: ['title', 'jobtitle', 'position', 'role'],
  timezone: ['timezone', 'tz', 'zone', 'tzname', 'ianatimezone'],
};

const squash = (s: string) => s.toLowerCase().replace(/[^\p{L}\p{N}]/gu, '');

/**
 * The `fields` key for an unmapped column: "Deal Stage" → deal_stage, "dealStage" → deal_stage.
 * camelCase is split only in a header with no separators of its own, so "LinkedIn URL" stays
 * linkedin_url rather than becoming linked_in_url.
 */
function snakeCase(s: string): string {
  const words = /[^\p{L}\p{N}]/u.test(s.trim()) ? s : s.replace(/(\p{Ll}|\p{N})(\p{Lu})/gu, '$1_$2').replace(/(\p{Lu})(\p{Lu}\p{Ll})/gu, '$1_$2');
  return words.toLowerCase().replace(/[^\p{L}\p{N}]+/gu, '_').replace(/^_+|_+$/g, '');
}

/** The delimiter of the header line: the most frequent of , ; and tab outside quotes (a tie goes to the comma). */
function detectDelimiter(text: string): string {
  const line = text.split(/\r?\n/).find((l) => l.trim() !== '') ?? '';
  const counts: Record<string, number> = { ',': 0, ';': 0, '\t': 0 };
  let quoted = false;
  for (const c of line) {
    if (c === '"') quoted = !quoted;
    else if (!quoted && c in counts) counts[c]++;
  }
  return Object.entries(counts).reduce((best, cur) => (cur[1] > best[1] ? cur : best))[0];
}

/** Where a column's value goes in the lead: a named field, or a key of `fields` / `crm`. */
type Target = { kind: 'named'; name: NamedField } | { kind: 'fields' | 'crm'; name: string };

function targetOf(key: string): Target | null {
  if ((NAMED_FIELDS as readonly string[]).includes(key)) return { kind: 'named', name: key as NamedField };
  const m = /^(fields|crm)\.(.+)$/.exec(key);
  return m ? { kind: m[1] as 'fields' | 'crm', name: m[2] } : null;
}

/** Column → target, from an explicit mapping (exhaustive: unmapped columns are left out) or from the headers. */
function mapColumns(header: string[], mapping: Record<string, string> | undefined, headerRow: number, problems: LeadRowProblem[]): (Target | null)[] {
  const targets: (Target | null)[] = header.map(() => null);
  if (mapping) {
    for (const [key, column] of Object.entries(mapping)) {
      const target = targetOf(key);
      if (!target) {
        problems.push({ row: headerRow, field: key, message: `"${key}" is not a lead field (email, first_name, last_name, company, title, timezone, fields.<name>, crm.<name>)` });
        continue;
      }
      let i = header.indexOf(column);
      if (i < 0) i = header.findIndex((h) => squash(h) === squash(column));
      if (i < 0) problems.push({ row: headerRow, field: key, message: `column "${column}" (mapped to ${key}) is not in the header` });
      else targets[i] = target;
    }
    return targets;
  }
  const taken = new Set<string>();
  header.forEach((h, i) => {
    const named = NAMED_FIELDS.find((f) => !taken.has(f) && HEADER_ALIASES[f].includes(squash(h)));
    if (named) {
      taken.add(named);
      targets[i] = { kind: 'named', name: named };
      return;
    }
    const base = snakeCase(h) || `column_${i + 1}`;
    let name = base;
    for (let n = 2; taken.has(`fields.${name}`); n++) name = `${base}_${n}`;
    taken.add(`fields.${name}`);
    targets[i] = { kind: 'fields', name };
  });
  return targets;
}

/**
 * Leads from CSV text. `mapping` keys are lead fields (email, first_name, last_name, company, title,
 * timezone, fields.<name>, crm.<name>), values CSV header names; given, it is the whole mapping.
 * Without it, common headers are recognised (Email, E-mail, First Name, Surname, Organization, Job
 * Title, Time Zone…) and every other column becomes `fields.<snake_case header>`. Delimiter: comma,
 * semicolon (European spreadsheet exports) or tab, from the header line.
 *
 * Bad rows are reported, not thrown: `row` is the spreadsheet row (header = 1, empty lines count,
 * a quoted multi-line cell is one row), so it matches what the user sees when they open the file.
 * Empty cells are left out (an optional field stays unset); a repeated email (any case) keeps the
 * first row.
 */
export function parseLeadsCsv(text: string, mapping?: Record<string, string>): { leads: LeadInput[]; problems: LeadRowProblem[] } {
  const problems: LeadRowProblem[] = [];
  const src = text.replace(/^\uFEFF/, '');
  const records = parseCsv(src, {
    delimiter: detectDelimiter(src),
    info: true,
    relax_column_count: true,
    // O"Brien in an unquoted cell is a name, not an error.
    relax_quotes: true,
    // With relaxed quotes the error left in practice is a quote never closed, which swallows the rest of the
    // file: report it at the row it opened on and keep the rows before it.
    skip_records_with_error: true,
    on_skip: (err) => {
      const e = err as (Error & { records?: number }) | undefined;
      problems.push({ row: (e?.records ?? 0) + 1, message: `unreadable CSV: ${e?.message ?? 'a record was skipped'}` });
    },
  }) as unknown as { record: string[]; info: { records: number } }[];
  const blank = (cells: string[]) => cells.every((c) => c.trim() === '');

  const headerAt = records.findIndex((r) => !blank(r.record));
  if (headerAt < 0) return { leads: [], problems: [...problems, { row: 1, message: 'no header row: the file is empty' }] };
  const header = records[headerAt].record.map((h) => h.trim());
  const headerRow = records[headerAt].info.records;
  const targets = mapColumns(header, mapping, headerRow, problems);
  const emailColumn = targets.findIndex((t) => t?.kind === 'named' && t.name === 'email');
  if (emailColumn < 0) {
    if (!mapping || !('email' in mapping)) {
      problems.push({ row: headerRow, field: 'email', message: `no email column among ${header.map((h) => `"${h}"`).join(', ')}: map one, e.g. { email: "<header>" }` });
    }
    return { leads: [], problems };
  }

  const leads: LeadInput[] = [];
  const firstRow = new Map<string, number>();
  for (const { record, info } of records.slice(headerAt + 1)) {
    if (blank(record)) continue;
    const row = info.records;
    if (record.slice(header.length).some((c) => c.trim() !== '')) {
      problems.push({ row, message: `${record.length} cells but the header has ${header.length} (a delimiter inside an unquoted value?)` });
      continue;
    }
    const raw: Record<string, unknown> & { fields: Record<string, string>; crm: Record<string, unknown> } = { fields: {}, crm: {} };
    targets.forEach((t, i) => {
      const v = record[i]?.trim();
      if (!t || !v) return;
      if (t.kind === 'named') raw[t.name] = v;
      else raw[t.kind][t.name] = v;
    });
    const r = Lead.safeParse(raw, { error: errorMap });
    if (!r.success) {
      for (const iss of r.error.issues) {
        const field = iss.path.map(String).join('.');
        const column = header[targets.findIndex((t) => t && (t.kind === 'named' ? t.name : `${t.kind}.${t.name}`) === field)];
        problems.push({ row, field, message: `${field}${column ? ` (column "${column}")` : ''}: ${iss.message.replace(/^Invalid input: /, '')}` });
      }
      continue;
    }
    const key = r.data.email.toLowerCase();
    const first = firstRow.get(key);
    if (first !== undefined) {
      problems.push({ row, field: 'email', message: `email: ${r.data.email} is already on row ${first}` });
      continue;
    }
    firstRow.set(key, row);
    leads.push(r.data);
  }
  return { leads, problems };
}
