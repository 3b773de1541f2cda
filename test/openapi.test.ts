import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { ENGINES, skipEngine, startTestMailroom, type TestMailroom } from './helpers/mailroom.ts';

/**
 * Issue 5, item 6: the OpenAPI 3.1 document at /v1/openapi.json is generated from the zod schemas
 * that validate requests, and an independent linter (Redocly CLI, recommended rules) finds nothing
 * in it: no error and no warning.
 */

const REDOCLY = path.join(path.dirname(createRequire(import.meta.url).resolve('@redocly/cli/package.json')), 'bin/cli.js');

interface LintReport { totals: { errors: number; warnings: number }; problems: { ruleId: string; message: string; location: { pointer: string }[] }[] }

async function redoclyLint(doc: unknown): Promise<LintReport> {
  const dir = await mkdtemp(path.join(tmpdir(), 'mailroom-openapi-'));
  try {
    const file = path.join(dir, 'openapi.json');
    await writeFile(file, JSON.stringify(doc));
    // Redocly exits 1 when it finds errors; the JSON report is on stdout either way.
    const run = promisify(execFile)(process.execPath, [REDOCLY, 'lint', file, '--format=json'], {
      cwd: dir, // no redocly.yaml here: the built-in recommended ruleset
      env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
      maxBuffer: 16 * 1024 * 1024,
    }).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }));
    return JSON.parse((await run).stdout) as LintReport;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

for (const engine of ENGINES) {
  describe(`${engine}: OpenAPI document`, { skip: await skipEngine(engine) }, () => {
    let m: TestMailroom;
    let doc: any;
    before(async () => {
      m = await startTestMailroom(engine);
      const res = await fetch(`${m.api.base}/v1/openapi.json`); // no token: the description is public
      assert.equal(res.status, 200);
      doc = await res.json();
    });
    after(() => m?.destroy());

    test('served at /v1/openapi.json without a token: OpenAPI 3.1 naming this server, bearer auth, the same at /openapi.json', async () => {
      assert.equal(doc.openapi, '3.1.0');
      assert.equal(doc.servers[0].url, m.api.base);
      assert.deepEqual(doc.security, [{ bearer: [] }]);
      assert.equal(doc.components.securitySchemes.bearer.scheme, 'bearer');
      const old = await (await fetch(`${m.api.base}/openapi.json`)).json();
      assert.deepEqual(old.paths, doc.paths);
    });

    test('Redocly CLI (recommended rules) reports no error and no warning', async () => {
      const report = await redoclyLint(doc);
      const listed = report.problems.map((p) => `${p.ruleId} at ${p.location[0]?.pointer}: ${p.message}`).join('\n');
      assert.equal(report.totals.errors + report.totals.warnings, 0, listed);
    });

    test('the linter is live: a broken copy of the document fails it', async () => {
      const broken = structuredClone(doc);
      delete broken.info.license;
      for (const ops of Object.values(broken.paths as Record<string, Record<string, any>>)) for (const op of Object.values(ops)) delete op.operationId;
      delete broken.servers;
      const report = await redoclyLint(broken);
      assert.ok(report.problems.some((p) => p.ruleId === 'no-empty-servers'));
      assert.ok(report.totals.errors >= 1);
      assert.ok(report.problems.some((p) => p.ruleId === 'operation-operationId'));
      assert.ok(report.problems.some((p) => p.ruleId === 'info-license'));
    });

    test('every operation has a unique operationId, a summary, a tag and documents the problem responses', () => {
      const seen = new Set<string>();
      for (const [p, ops] of Object.entries(doc.paths as Record<string, Record<string, any>>)) {
        for (const [method, op] of Object.entries(ops)) {
          const where = `${method.toUpperCase()} ${p}`;
          assert.match(op.operationId ?? '', /^[a-z][A-Za-z]+$/, where);
          assert.ok(!seen.has(op.operationId), `${op.operationId} used twice`);
          seen.add(op.operationId);
          assert.ok(op.summary, `${where} has a summary`);
          assert.ok(op.tags?.length, `${where} has a tag`);
          assert.ok(op.responses['401'] && op.responses['403'], `${where} documents 401 and 403`);
        }
      }
      assert.ok(seen.size >= 39);
    });

    test('the document describes what the server validates: a body the schema refuses is refused with the field named', async () => {
      const schema = doc.paths['/v1/inboxes'].post.requestBody.content['application/json'].schema;
      const ref = schema.$ref ? doc.components.schemas[schema.$ref.split('/').pop()] : schema;
      const max = ref.properties.username.maxLength as number;
      assert.equal(typeof max, 'number');
      const res = await m.api('POST', '/v1/inboxes', { username: 'a'.repeat(max + 1) });
      assert.equal(res.status, 400);
      assert.equal(res.body.code, 'invalid_request');
      assert.match(res.body.detail, /username/);
    });
  });
}
