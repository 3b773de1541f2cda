import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { CampaignFileError, parseCampaignFile, parseLeadsCsv, validateCampaign, type CampaignFileProblem } from '../src/orchestrator/campaign-file.ts';
import { leadTimeZone } from '../src/orchestrator/calendar.ts';

/**
 * Campaign files and lead import (src/orchestrator/campaign-file.ts). Expected positions are found
 * by searching the fixture text for the offending snippet, so each assertion says "the problem is
 * reported where this text is" and cannot drift when a fixture line is added.
 */

const root = new URL('../', import.meta.url);
const example = (name: string) => readFileSync(new URL(`examples/campaigns/${name}`, root), 'utf8');

/** 1-based line and column of the first occurrence of `needle` (at `offset` characters into it). */
function at(text: string, needle: string, offset = 0): { line: number; column: number } {
  const i = text.indexOf(needle);
  assert.ok(i >= 0, `fixture contains ${needle}`);
  const before = text.slice(0, i + offset);
  return { line: before.split('\n').length, column: i + offset - before.lastIndexOf('\n') };
}

function problemsOf(text: string, filename?: string): { error: CampaignFileError; problems: CampaignFileProblem[] } {
  try {
    parseCampaignFile(text, filename);
  } catch (e) {
    assert.ok(e instanceof CampaignFileError, `a CampaignFileError, not ${String(e)}`);
    return { error: e, problems: e.problems };
  }
  assert.fail('expected the file to be rejected');
}

function only(problems: CampaignFileProblem[], path: string): CampaignFileProblem {
  const found = problems.filter((p) => p.path === path);
  assert.equal(found.length, 1, `one problem at ${path} in ${JSON.stringify(problems)}`);
  return found[0];
}

const GOOD_YAML = `name: Pilot
senders:
  - inbox: ada@outreach.example.com
escalate_to: owner@example.com
send_window:
  start: 09:30
  end: "16:00"
steps:
  - subject: Hello {{first_name|there}}
    text: Hi
  - text: Following up
    delay_business_days: 3
`;

describe('campaign files', () => {
  test('the example campaign parses, with defaults filled in', () => {
    const spec = parseCampaignFile(example('outreach.yaml'), 'examples/campaigns/outreach.yaml');
    assert.equal(spec.steps.length, 3);
    assert.equal(spec.senders.length, 2);
    assert.match(spec.steps[0].subject ?? '', /\{\{company\|your team\}\}/);
    assert.match(spec.steps[0].text, /\{\{first_name\|there\}\}/);
    assert.match(spec.steps[0].text, /\{\{notes\.hook\}\}/);
    assert.deepEqual(spec.steps.map((s) => s.delay_business_days), [2, 3, 5]);
    assert.deepEqual(spec.send_window, { days: ['mon', 'tue', 'wed', 'thu'], start: '09:30', end: '16:30' });
    assert.equal(spec.stop.on_reply, true);
    assert.equal(spec.agents.sequence, 'builtin');
  });

  test('YAML 1.2: an unquoted 09:30 is a string, not sexagesimal 570', () => {
    const spec = parseCampaignFile(GOOD_YAML, 'c.yaml');
    assert.equal(spec.send_window.start, '09:30');
    assert.equal(spec.steps[1].delay_business_days, 3);
  });

  test('the same campaign as JSON, by extension or by content', () => {
    const json = JSON.stringify(parseCampaignFile(GOOD_YAML, 'c.yaml'), null, 2);
    assert.equal(parseCampaignFile(json, 'c.json').name, 'Pilot');
    assert.equal(parseCampaignFile(json).name, 'Pilot');
    assert.equal(parseCampaignFile(`\uFEFF${json}`).name, 'Pilot');
    assert.equal(parseCampaignFile(`\uFEFF${GOOD_YAML}`).name, 'Pilot');
  });

  test('a wrong type deep in steps is reported at its line and column', () => {
    const text = GOOD_YAML.replace('delay_business_days: 3', 'delay_business_days: three');
    const { error, problems } = problemsOf(text, 'camp.yaml');
    const p = only(problems, 'steps[1].delay_business_days');
    assert.deepEqual({ line: p.line, column: p.column }, at(text, 'three'));
    assert.match(p.message, /expected number/);
    assert.equal(error.message, `camp.yaml:${p.line}:${p.column}: steps[1].delay_business_days: ${p.message}`);
  });

  test('the same in JSON points into the JSON text', () => {
    const text = `{
  "name": "Pilot",
  "senders": [{ "inbox": "ada@outreach.example.com" }],
  "escalate_to": "owner@example.com",
  "steps": [
    { "subject": "Hi", "text": "Hello" },
    { "text": "Again", "delay_business_days": "3" }
  ]
}`;
    const p = only(problemsOf(text, 'c.json').problems, 'steps[1].delay_business_days');
    assert.deepEqual({ line: p.line, column: p.column }, at(text, '"3"'));
  });

  test('a misspelt key (strict objects) points at the key and suggests the right one', () => {
    const text = GOOD_YAML.replace('delay_business_days: 3', 'delay_busines_days: 3').replace('  - inbox: ada', '  - inbox: ada@outreach.example.com\n    dailycap: 5\n  - inbox: bob');
    const { problems } = problemsOf(text, 'c.yaml');
    const step = only(problems, 'steps[1].delay_busines_days');
    assert.deepEqual({ line: step.line, column: step.column }, at(text, 'delay_busines_days'));
    assert.match(step.message, /unknown key "delay_busines_days" \(did you mean "delay_business_days"\?\)/);
    const sender = only(problems, 'senders[0].dailycap');
    assert.deepEqual({ line: sender.line, column: sender.column }, at(text, 'dailycap'));
    assert.match(sender.message, /did you mean "daily_cap"/);
    const top = only(problemsOf(`${GOOD_YAML}colour: blue\n`, 'c.yaml').problems, 'colour');
    assert.match(top.message, /unknown key "colour" \(allowed here: name, description, senders/);
  });

  test('a missing required key points at the mapping that should hold it', () => {
    const text = GOOD_YAML.replace('  - text: Following up\n', '  - subjekt: Again\n');
    const { problems } = problemsOf(text, 'c.yaml');
    const p = only(problems, 'steps[1].text');
    assert.match(p.message, /required \(expected string\)/);
    assert.deepEqual({ line: p.line, column: p.column }, at(text, 'subjekt'));
    // A key with an empty value is reported at the key, not at the next line.
    const empty = GOOD_YAML.replace('text: Hi', 'text:');
    const e = only(problemsOf(empty, 'c.yaml').problems, 'steps[0].text');
    assert.deepEqual({ line: e.line, column: e.column }, at(empty, 'text:\n'));
  });

  test('cross-field rules (superRefine) land on the right line too', () => {
    const noSubject = GOOD_YAML.replace('  - subject: Hello {{first_name|there}}\n    text: Hi', '  - text: Hi');
    const p = only(problemsOf(noSubject, 'c.yaml').problems, 'steps[0].subject');
    assert.equal(p.message, 'the first step needs a subject');
    assert.deepEqual({ line: p.line, column: p.column }, at(noSubject, 'text: Hi'));
    const tooMany = `${GOOD_YAML}stop:\n  max_steps: 5\n`;
    const m = only(problemsOf(tooMany, 'c.yaml').problems, 'stop.max_steps');
    assert.deepEqual({ line: m.line, column: m.column }, at(tooMany, 'max_steps: 5', 'max_steps: '.length));
    const noEscalation = GOOD_YAML.replace('escalate_to: owner@example.com\n', '');
    const esc = only(problemsOf(noEscalation, 'c.yaml').problems, 'escalate_to');
    assert.deepEqual({ line: esc.line, column: esc.column }, { line: 1, column: 1 });
  });

  test('every problem is reported at once, each on its own line of the message', () => {
    const text = GOOD_YAML.replace('name: Pilot', 'name: ""').replace('end: "16:00"', 'end: "4pm"').replace('delay_business_days: 3', 'delay_business_days: -1');
    const { error, problems } = problemsOf(text, 'c.yaml');
    assert.deepEqual(problems.map((p) => p.path).sort(), ['name', 'send_window.end', 'steps[1].delay_business_days']);
    assert.equal(error.message.split('\n').length, 3);
    for (const line of error.message.split('\n')) assert.match(line, /^c\.yaml:\d+:\d+: [\w.[\]]+: .+/);
    assert.deepEqual({ line: only(problems, 'send_window.end').line }, { line: at(text, '4pm').line });
  });

  test('a YAML syntax error carries its position', () => {
    const text = 'name: Pilot\nsenders:\n  - inbox: a@b.example\n steps:\n  - text: x\n';
    const { problems, error } = problemsOf(text, 'bad.yaml');
    assert.ok(problems.length >= 1);
    assert.match(problems[0].message, /^YAML syntax: /);
    assert.equal(problems[0].line, 4);
    assert.match(error.message, /^bad\.yaml:4:\d+: YAML syntax: /);
    const flow = problemsOf('name: x\nsteps: [a, b\nlabels: []\n', 'bad.yaml').problems;
    assert.ok(flow[0].line !== null && flow[0].line >= 2 && flow[0].line <= 3, JSON.stringify(flow));
    const dup = problemsOf('name: x\nname: y\n', 'dup.yaml').problems;
    assert.deepEqual([dup[0].line, dup[0].column], [2, 1]);
    assert.match(dup[0].message, /given twice/);
  });

  test('a JSON syntax error carries its position, trailing commas and bare words included', () => {
    const missingComma = '{\n  "name": "x"\n  "steps": []\n}';
    const a = problemsOf(missingComma, 'c.json').problems;
    assert.equal(a.length, 1);
    assert.deepEqual([a[0].line, a[0].column], [3, 3]);
    assert.match(a[0].message, /^JSON syntax: Expected ',' or '}' after property value$/);
    // Valid YAML, invalid JSON: JSON.parse is the judge.
    const trailing = '{\n  "name": "x",\n  "labels": ["a",],\n}';
    const b = problemsOf(trailing, 'c.json').problems;
    assert.deepEqual([b[0].line, b[0].column], [at(trailing, ',]', 1).line, at(trailing, ',]', 1).column]);
    // V8 gives no position for a misspelt literal: the scanner finds it.
    const literal = '{\n  "name": "x",\n  "marketing": tru\n}';
    const c = problemsOf(literal, 'c.json').problems;
    assert.deepEqual([c[0].line, c[0].column], [at(literal, 'tru').line, at(literal, 'tru').column]);
    assert.match(c[0].message, /^JSON syntax: "tru" is not a JSON value/);
    const bare = '{"name": nope}';
    assert.deepEqual([problemsOf(bare, 'c.json').problems[0].column], [10]);
    assert.match(problemsOf("{'name': 'x'}", 'c.json').problems[0].message, /^JSON syntax: Expected property name/);
    const cut = '{\n  "name": "x",\n';
    assert.match(problemsOf(cut, 'c.json').problems[0].message, /JSON syntax/);
    // Detected by content (no extension): JSON's rules apply.
    assert.match(problemsOf('{"name": "x",}').problems[0].message, /^JSON syntax/);
  });

  test('a key given twice in JSON is an error, not a silent override', () => {
    const text = '{\n  "name": "x",\n  "name": "y"\n}';
    const p = problemsOf(text, 'c.json').problems;
    assert.equal(p.length, 1);
    assert.deepEqual([p[0].line, p[0].column], [3, 3]);
    assert.match(p[0].message, /given twice/);
  });

  test('an empty file, a list, a scalar: one clear problem each', () => {
    assert.match(problemsOf('', 'c.yaml').error.message, /^c\.yaml:1:1: expected object, received null$/);
    assert.match(problemsOf('- a\n- b\n', 'c.yaml').error.message, /expected object, received array/);
    assert.match(problemsOf('just words', 'c.yaml').error.message, /expected object, received string/);
    assert.match(problemsOf('[]', undefined).error.message, /^campaign:1:1: expected object/);
  });

  test('alias bombs are refused', () => {
    const bomb = ['a: &a ["x","x","x","x","x","x","x","x","x"]', 'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]', 'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]', 'd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]', 'e: [*d,*d,*d,*d,*d,*d,*d,*d,*d]'].join('\n');
    assert.match(problemsOf(bomb, 'bomb.yaml').error.message, /^bomb\.yaml: YAML: .*alias/i);
  });

  test('validateCampaign: the API path, same rules, paths without positions', () => {
    const ok = validateCampaign({ name: 'x', senders: [{ inbox: 'a@b.example' }], escalate_to: 'o@b.example', steps: [{ subject: 's', text: 't' }] });
    assert.equal(ok.ok, true);
    if (ok.ok) {
      assert.equal(ok.spec.timezone, 'UTC');
      assert.equal(ok.spec.steps[0].delay_business_days, 2);
      assert.deepEqual(ok.spec.send_window.days, ['mon', 'tue', 'wed', 'thu', 'fri']);
    }
    const bad = validateCampaign({ name: 'x', senders: [], steps: [{ text: 5, delai: 1 }], timezone: 'Mars/Base' });
    assert.equal(bad.ok, false);
    if (!bad.ok) {
      const byPath = Object.fromEntries(bad.problems.map((p) => [p.path, p.message]));
      assert.equal(byPath.senders, 'at least one sender inbox');
      assert.match(byPath['steps[0].text'], /expected string, received number/);
      assert.match(byPath['steps[0].delai'], /unknown key "delai"/);
      assert.match(byPath.timezone, /IANA time zone/);
      for (const p of bad.problems) assert.deepEqual(Object.keys(p).sort(), ['message', 'path']);
    }
    assert.equal(validateCampaign(null).ok, false);
  });
});

describe('leads from CSV', () => {
  test('the example leads import cleanly, and their domains give their time zones', () => {
    const { leads, problems } = parseLeadsCsv(example('leads.csv'));
    assert.deepEqual(problems, []);
    assert.equal(leads.length, 10);
    const maria = leads.find((l) => l.email.startsWith('maria.keller'));
    assert.deepEqual({ ...maria, fields: undefined }, {
      email: 'maria.keller@keller-logistik.example.de', first_name: 'Maria', last_name: 'Keller', company: 'Keller Logistik GmbH',
      title: 'Head of Platform Engineering', fields: undefined, crm: {},
    });
    assert.deepEqual(maria?.fields, { industry: 'Logistics', notes: 'Runs 14 internal agents; asked about self-hosting at a meetup' });
    const zones = Object.fromEntries(leads.map((l) => [l.email.split('@')[1], leadTimeZone(l, 'America/New_York').zone]));
    assert.equal(zones['keller-logistik.example.de'], 'Europe/Berlin');
    assert.equal(zones['northbank.example.co.uk'], 'Europe/London');
    assert.equal(zones['sakura-systems.example.co.jp'], 'Asia/Tokyo');
    assert.equal(zones['acme.example'], 'America/Chicago'); // the lead's own column
    assert.equal(leads.find((l) => l.email.startsWith('yuki'))?.fields?.notes, 'Hiring for "AI operations" roles');
  });

  test('common header spellings map without a mapping; other columns go to fields in snake_case', () => {
    const csv = 'E-mail,Given name,Surname,Organization,Job Title,Time Zone,Deal Stage,LinkedIn URL,accountOwner,\n' +
      'ada@x.example,Ada,Lovelace,Analytical,Founder,Europe/London,Qualified,https://li.example/ada,Grace,extra\n';
    const { leads, problems } = parseLeadsCsv(csv);
    assert.deepEqual(problems, []);
    assert.deepEqual(leads[0], {
      email: 'ada@x.example', first_name: 'Ada', last_name: 'Lovelace', company: 'Analytical', title: 'Founder', timezone: 'Europe/London',
      fields: { deal_stage: 'Qualified', linkedin_url: 'https://li.example/ada', account_owner: 'Grace', column_10: 'extra' }, crm: {},
    });
    const cases: [string, string][] = [
      ['Email Address', 'email'], ['EMAIL', 'email'], ['e_mail', 'email'], ['firstname', 'first_name'], ['First Name', 'first_name'],
      ['Given name', 'first_name'], ['last_name', 'last_name'], ['Surname', 'last_name'], ['Company Name', 'company'], ['Organisation', 'company'],
      ['Job Title', 'title'], ['tz', 'timezone'], ['Time-Zone', 'timezone'],
    ];
    for (const [header, field] of cases) {
      const value = field === 'email' ? 'q@x.example' : field === 'timezone' ? 'Asia/Tokyo' : 'v';
      const r = parseLeadsCsv(field === 'email' ? `${header}\n${value}\n` : `Email,${header}\nq@x.example,${value}\n`);
      assert.deepEqual(r.problems, [], header);
      assert.equal((r.leads[0] as Record<string, unknown>)[field], value, `${header} → ${field}`);
    }
  });

  test('an explicit mapping is the whole mapping: named fields, fields.* and crm.*', () => {
    const csv = 'Work Email,Vorname,Firma,ARR,Owner,Ignored\nmax@x.example.de,Max,Mustermann AG,120000,Sam,zzz\n';
    const { leads, problems } = parseLeadsCsv(csv, { email: 'Work Email', first_name: 'vorname', company: 'Firma', 'crm.arr': 'ARR', 'fields.owner': 'Owner' });
    assert.deepEqual(problems, []);
    assert.deepEqual(leads, [{ email: 'max@x.example.de', first_name: 'Max', company: 'Mustermann AG', fields: { owner: 'Sam' }, crm: { arr: '120000' } }]);
    const wrong = parseLeadsCsv(csv, { email: 'Mail', nickname: 'Vorname' });
    assert.deepEqual(wrong.leads, []);
    assert.deepEqual(wrong.problems.map((p) => [p.row, p.field]), [[1, 'email'], [1, 'nickname']]);
    assert.match(wrong.problems.find((p) => p.field === 'email')?.message ?? '', /column "Mail" \(mapped to email\) is not in the header/);
    assert.match(wrong.problems.find((p) => p.field === 'nickname')?.message ?? '', /not a lead field/);
    const noEmail = parseLeadsCsv(csv, { first_name: 'Vorname' });
    assert.match(noEmail.problems[0].message, /no email column/);
  });

  test('BOM, CRLF, quoted commas and newlines, empty lines — and rows stay spreadsheet rows', () => {
    const rows = ['\uFEFFEmail,Company,Notes', 'a@x.example,"Smith, Jones & Co","line one\r\nline two"', '', 'not-an-email,Acme,', 'b@x.example,"Quote ""Inc""",', ''];
    const csv = rows.join('\r\n');
    const { leads, problems } = parseLeadsCsv(csv);
    assert.deepEqual(leads.map((l) => l.email), ['a@x.example', 'b@x.example']);
    assert.equal(leads[0].company, 'Smith, Jones & Co');
    assert.equal(leads[0].fields?.notes, 'line one\r\nline two');
    assert.equal(leads[1].company, 'Quote "Inc"');
    // Header row 1, the multi-line record row 2, the empty line row 3, the bad address row 4.
    assert.equal(problems.length, 1);
    assert.deepEqual([problems[0].row, problems[0].field], [4, 'email']);
    assert.match(problems[0].message, /^email \(column "Email"\): an email address such as/);
  });

  test('semicolon- and tab-separated files', () => {
    const semi = parseLeadsCsv('Email;First Name;Company\nanna@x.example.at;Anna;"Müller; Söhne"\nben@x.example.at;Ben;B GmbH\n');
    assert.deepEqual(semi.problems, []);
    assert.deepEqual(semi.leads.map((l) => [l.first_name, l.company]), [['Anna', 'Müller; Söhne'], ['Ben', 'B GmbH']]);
    // A header with more semicolons than commas is semicolon-separated even if values contain commas.
    const mixed = parseLeadsCsv('Email;Company;Notes\nc@x.example;C, Inc;"a, b"\n');
    assert.deepEqual([mixed.leads[0].company, mixed.leads[0].fields?.notes], ['C, Inc', 'a, b']);
    const tabs = parseLeadsCsv('Email\tFirst Name\nd@x.example\tDee\n');
    assert.equal(tabs.leads[0].first_name, 'Dee');
  });

  test('bad rows are problems with their row and field, not exceptions', () => {
    const csv = 'Email,First Name,Time Zone\n' +
      'ok@x.example,Ok,\n' +
      'tz@x.example,Tz,Mars/Olympus\n' +
      ',NoEmail,\n' +
      'OK@X.EXAMPLE,Dup,\n' +
      'wide@x.example,Wide,Europe/Paris,surplus\n' +
      'fine@x.example,Fine,Europe/Paris,\n';
    const { leads, problems } = parseLeadsCsv(csv);
    assert.deepEqual(leads.map((l) => l.email), ['ok@x.example', 'fine@x.example']);
    assert.deepEqual(problems.map((p) => [p.row, p.field ?? null]), [[3, 'timezone'], [4, 'email'], [5, 'email'], [6, null]]);
    assert.match(problems[0].message, /timezone \(column "Time Zone"\): an IANA time zone/);
    assert.match(problems[1].message, /email \(column "Email"\): required/);
    assert.match(problems[2].message, /OK@X\.EXAMPLE is already on row 2/);
    assert.match(problems[3].message, /4 cells but the header has 3/);
  });

  test('an unclosed quote is a problem, and the rows before it survive', () => {
    const { leads, problems } = parseLeadsCsv('Email,Notes\na@x.example,fine\nb@x.example,"never closed\n');
    assert.deepEqual(leads.map((l) => l.email), ['a@x.example']);
    assert.equal(problems.length, 1);
    assert.equal(problems[0].row, 3);
    assert.match(problems[0].message, /unreadable CSV.*Quote Not Closed/i);
  });

  test('no email column, no rows, nothing at all', () => {
    assert.match(parseLeadsCsv('Name,Company\nAda,X\n').problems[0].message, /no email column among "Name", "Company"/);
    assert.deepEqual(parseLeadsCsv('Email\n'), { leads: [], problems: [] });
    assert.deepEqual(parseLeadsCsv('').problems, [{ row: 1, message: 'no header row: the file is empty' }]);
    assert.deepEqual(parseLeadsCsv('\r\n\r\n').problems, [{ row: 1, message: 'no header row: the file is empty' }]);
  });
});
