import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { collapseWhitespace, escapeHtml, lookupPath, renderSubject, renderTemplate, templateVariables } from '../src/orchestrator/template.ts';

/**
 * Personalization templates (issue 6, item 2): variables with fallbacks, dotted paths, missing
 * names reported, HTML escaping of values only, no second expansion, one-line subjects.
 */

const vars = {
  first_name: 'Ada',
  company: 'Acme & Sons',
  blank: '   ',
  seats: 12,
  zero: 0,
  active: true,
  nan: Number.NaN,
  nothing: null,
  obj: { a: 1 },
  list: ['x', 'y'],
  fields: { plan: 'Pro', empty: '' },
  notes: { hook: 'Saw your launch.' },
  crm: { industry: 'fintech', address: { city: 'Berlin' } },
};

describe('renderTemplate', () => {
  test('plain names, with and without spaces inside the braces', () => {
    const r = renderTemplate('Hi {{first_name}}, hi {{ first_name }}, hi {{  first_name   }}.', vars);
    assert.equal(r.text, 'Hi Ada, hi Ada, hi Ada.');
    assert.deepEqual(r.missing, []);
  });

  test('dotted paths into fields, notes and crm, nested', () => {
    const r = renderTemplate('{{fields.plan}} / {{ notes.hook }} / {{crm.industry}} / {{crm.address.city}}', vars);
    assert.equal(r.text, 'Pro / Saw your launch. / fintech / Berlin');
    assert.deepEqual(r.missing, []);
  });

  test('fallback used when the value is missing or blank, not when it is present', () => {
    const r = renderTemplate('Hi {{ last_name | there }}, {{blank|friend}}, {{fields.empty | no plan}}, {{ first_name | there }}', vars);
    assert.equal(r.text, 'Hi there, friend, no plan, Ada');
    assert.deepEqual(r.missing, []);
  });

  test('a fallback may have several words and is trimmed; "{{x|}}" is an explicit empty fallback', () => {
    const r = renderTemplate('[{{ nope |   your whole team  }}][{{nope2|}}]', vars);
    assert.equal(r.text, '[your whole team][]');
    assert.deepEqual(r.missing, [], 'an explicit empty fallback is not missing');
  });

  test('missing names render empty and are listed once each, in order of first use', () => {
    const r = renderTemplate('{{b}}{{a}} {{ b }} {{fields.nope}} {{crm.address.zip}}', vars);
    assert.equal(r.text, '   ');
    assert.deepEqual(r.missing, ['b', 'a', 'fields.nope', 'crm.address.zip']);
  });

  test('numbers and booleans are stringified (0 is a value); objects, arrays, null and NaN count as missing', () => {
    const r = renderTemplate('{{seats}} {{zero}} {{active}} [{{obj}}] [{{list}}] [{{nothing}}] [{{nan}}] [{{crm.address}}]', vars);
    assert.equal(r.text, '12 0 true [] [] [] [] []');
    assert.deepEqual(r.missing, ['obj', 'list', 'nothing', 'nan', 'crm.address']);
    assert.equal(renderTemplate('{{ obj | n/a }}', vars).text, 'n/a', 'an object falls back');
  });

  test('values are trimmed', () => {
    assert.equal(renderTemplate('<{{x}}>', { x: '  Ada \n' }).text, '<Ada>');
  });

  test('prototype properties are not values', () => {
    const r = renderTemplate('{{constructor}}{{toString}}{{obj.constructor}}{{__proto__}}{{ hasOwnProperty | none }}', vars);
    assert.equal(r.text, 'none');
    assert.deepEqual(r.missing, ['constructor', 'toString', 'obj.constructor', '__proto__']);
    assert.equal(lookupPath({ a: Object.create({ inherited: 'x' }) }, 'a.inherited'), undefined);
  });

  test('a value containing template syntax is inserted literally, never expanded', () => {
    const evil = { company: '{{secret}} and {{ first_name | x }}', secret: 'TOP SECRET', first_name: 'Ada' };
    const r = renderTemplate('At {{company}}', evil);
    assert.equal(r.text, 'At {{secret}} and {{ first_name | x }}');
    assert.ok(!r.text.includes('TOP SECRET'));
    assert.deepEqual(r.missing, []);
    // Nor through a fallback that looks like a tag, nor in HTML mode.
    assert.equal(renderTemplate('{{company}}', evil, { escape: 'html' }).text, '{{secret}} and {{ first_name | x }}');
  });

  test('HTML escaping applies to values only, not to the template or fallbacks', () => {
    const v = { company: 'Acme & <Sons> "quoted" \'single\'', name: '<script>alert(1)</script>' };
    const r = renderTemplate('<p class="x">Hi {{name}} at <b>{{company}}</b> {{missing | &amp; co}}</p>', v, { escape: 'html' });
    assert.equal(r.text, '<p class="x">Hi &lt;script&gt;alert(1)&lt;/script&gt; at <b>Acme &amp; &lt;Sons&gt; &quot;quoted&quot; &#39;single&#39;</b> &amp; co</p>');
    assert.equal(renderTemplate('{{name}}', v).text, '<script>alert(1)</script>', 'escape defaults to none');
    assert.equal(renderTemplate('{{name}}', v, { escape: 'none' }).text, '<script>alert(1)</script>');
    assert.equal(escapeHtml(`&<>"'`), '&amp;&lt;&gt;&quot;&#39;');
  });

  test('tags that are not names stay as written; stray braces are text', () => {
    const r = renderTemplate('{{ }} {{first name}} {{1abc}} {{ a..b }} { first_name } {{{first_name}}} }}{{', vars);
    assert.equal(r.text, '{{ }} {{first name}} {{1abc}} {{ a..b }} { first_name } {Ada} }}{{');
    assert.deepEqual(r.missing, []);
  });

  test('a name may hold "-" and "_" and digits after the first character', () => {
    assert.equal(renderTemplate('{{a_b-c2}} {{fields.x-y}}', { 'a_b-c2': 'ok', fields: { 'x-y': 'yes' } }).text, 'ok yes');
  });

  // A termination bound, not a speed target: backtracking on this input takes minutes.
  test('a template with a huge unterminated run renders in bounded time (no backtracking)', () => {
    const tpl = `${'{{'.repeat(200_000)}${' a '.repeat(100_000)}|${'x'.repeat(100_000)}`;
    const t0 = performance.now();
    const r = renderTemplate(tpl, vars);
    assert.ok(performance.now() - t0 < 10_000, `took ${performance.now() - t0} ms`);
    assert.equal(r.text, tpl);
  });
});

describe('renderSubject', () => {
  test('values cannot carry CR/LF (or tabs, NEL, LS/PS, other controls) into a subject', () => {
    const r = renderSubject('Hello {{name}} -\t{{company}}', { name: 'Ada\r\nBcc: victim@example.com', company: 'A\u2028B\u0085C\u0000D\nE' });
    assert.equal(r.text, 'Hello Ada Bcc: victim@example.com - A B C D E');
    assert.doesNotMatch(r.text, /[\r\n\t\u0085\u2028\u2029\u0000]/);
  });

  test('the template itself is collapsed too, trimmed, and not HTML-escaped', () => {
    const r = renderSubject('  Quick\nquestion   for {{ company | your team }}  ', { company: 'R&D <lab>' });
    assert.equal(r.text, 'Quick question for R&D <lab>');
  });

  test('missing names are listed', () => {
    assert.deepEqual(renderSubject('{{a}} and {{b|x}}', {}).missing, ['a']);
  });

  test('collapseWhitespace', () => {
    assert.equal(collapseWhitespace(' a \r\n\r\n b\u00a0c '), 'a b c');
  });
});

describe('templateVariables', () => {
  test('lists each name once, in order, with or without fallbacks, ignoring non-tags', () => {
    assert.deepEqual(
      templateVariables('Hi {{ first_name | there }}, {{company}} {{notes.hook}} {{first_name}} {{ }} {{a b}} {{crm.industry|tech}}'),
      ['first_name', 'company', 'notes.hook', 'crm.industry'],
    );
    assert.deepEqual(templateVariables('no tags here'), []);
  });
});
