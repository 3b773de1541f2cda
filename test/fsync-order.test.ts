import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ENGINES } from './helpers/mailroom.ts';
import { SmtpClient, message } from './helpers/smtp.ts';

/**
 * D1: in embedded mode the `250` must follow an fdatasync of the spool segment holding the message.
 * The server runs under strace; the trace must show, in this order: the message bytes written to a
 * spool segment file, an fdatasync of that file completing, then the `250` written to the socket.
 * (On PostgreSQL the fsync is the server's own COMMIT, outside this process.)
 */
const hasStrace = spawnSync('strace', ['-V']).status === 0;

describe('pglite: D1 fsync happens before 250', {
  skip: !ENGINES.includes('pglite') ? 'pglite not selected' : !hasStrace ? 'strace is not installed (apt-get install strace)' : false,
}, () => {
  let dir: string;
  let child: ChildProcess | null = null;
  before(async () => { dir = await mkdtemp(path.join(tmpdir(), 'mailroom-d1-')); });
  after(async () => {
    // strace and the server are one process group: kill both, or an orphaned server keeps the test alive.
    // Only while it runs: once reaped, its PID (and group id) may belong to another process.
    if (child?.pid && child.exitCode === null && child.signalCode === null) try { process.kill(-child.pid, 'SIGKILL'); } catch {}
    await rm(dir, { recursive: true, force: true });
  });

  test('D1: spool write → fdatasync completes → 250 is sent, in that order', async () => {
    const traceFile = path.join(dir, 'strace.log');
    const env = {
      ...process.env,
      MAILROOM_DATA_DIR: path.join(dir, 'data'),
      MAILROOM_HTTP_PORT: '0',
      MAILROOM_SMTP_PORT: '0',
      MAILROOM_DOMAIN: 'mailroom.test',
      MAILROOM_ADMIN_TOKEN: 'd1-admin-token-0123456789',
      MAILROOM_LOG_LEVEL: 'warn',
    };
    child = spawn('strace', ['-f', '-y', '-s', '64', '-e', 'trace=openat,write,writev,pwrite64,pwritev,fdatasync,fsync,sendto,sendmsg', '-o', traceFile,
      process.execPath, path.resolve('bin/mailroom.js'), 'serve'], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let out = '';
    child.stdout!.on('data', (d) => { out += d; });
    const smtpPort = await new Promise<number>((resolve, reject) => {
      // Tracing slows start-up a lot (PGlite's WASM boot makes many syscalls): be patient.
      const t = setTimeout(() => reject(new Error(`server did not start under strace: ${out}`)), 180_000);
      const check = () => {
        const m = /SMTP\s+[\d.]+:(\d+)/.exec(out);
        if (m) { clearTimeout(t); resolve(Number(m[1])); }
      };
      child!.stdout!.on('data', check);
      child!.once('exit', (code) => reject(new Error(`server exited ${code}: ${out}`)));
    });
    const tokenRes = await fetch(`http://127.0.0.1:${/HTTP API\s+http:\/\/[\d.]+:(\d+)/.exec(out)![1]}/v1/inboxes`, {
      method: 'POST', headers: { authorization: 'Bearer d1-admin-token-0123456789', 'content-type': 'application/json' }, body: '{"username":"d1"}',
    });
    assert.equal(tokenRes.status, 201);
    const marker = `D1-MARKER-${Date.now()}`;
    const c = await SmtpClient.connect(smtpPort);
    await c.cmd('EHLO t');
    const r = await c.send('s@example.com', ['d1@mailroom.test'], message({ subject: marker, body: marker }));
    assert.equal(r.data?.code, 250);
    await c.quit();
    const exited = new Promise((res) => child!.once('exit', res));
    process.kill(-child.pid!, 'SIGKILL');
    await exited;
    child = null;

    const lines = (await readFile(traceFile, 'utf8')).split('\n');
    // With -y strace prints fds as 3</path/to/file>; unfinished calls are completed by "resumed" lines.
    const writeAt = lines.findIndex((l) => /pwritev?\(\d+<[^>]*\/spool\/seg-\d+\.log>/.test(l) && l.includes('MRS1'));
    assert.ok(writeAt >= 0, 'the message record is written to a spool segment');
    const segFd = /pwritev?\((\d+)</.exec(lines[writeAt])![1];
    const syncAt = lines.findIndex((l, i) => i > writeAt && (
      new RegExp(`fdatasync\\(${segFd}<[^>]*seg-\\d+\\.log>\\)\\s*= 0`).test(l) ||
      (/fdatasync resumed>\)\s*= 0/.test(l) && lines.slice(writeAt, i).some((p) => new RegExp(`fdatasync\\(${segFd}<`).test(p)))
    ));
    assert.ok(syncAt > writeAt, 'an fdatasync of that segment completes after the write');
    const replyAt = lines.findIndex((l) => /(write|writev|sendto|sendmsg)\(\d+<(TCP|socket)[^>]*>.*250 2\.0\.0 Ok: queued/.test(l));
    assert.ok(replyAt >= 0, 'the 250 reply is found in the trace');
    assert.ok(syncAt < replyAt, `fdatasync (line ${syncAt}) must complete before the 250 is written (line ${replyAt})`);
  });
});
