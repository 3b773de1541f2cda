import { spawnSync } from 'node:child_process';

/**
 * DKIM verification by an independent implementation: Debian's python3-dkim (dkimpy), not the
 * library Mailroom signs with. The public key is handed to it through its `dnsfunc` hook, since the
 * signing domain exists only in the test's DNS. `.ci/run` installs python3-dkim when it is missing.
 */
const PY = '/usr/bin/python3';

export function dkimpyAvailable(): boolean {
  return spawnSync(PY, ['-c', 'import dkim'], { stdio: 'ignore' }).status === 0;
}

export function dkimpyVerify(raw: Buffer, txtRecord: string): { ok: boolean; output: string } {
  const script = [
    'import sys, dkim',
    'txt = sys.argv[1].encode()',
    'msg = sys.stdin.buffer.read()',
    'ok = dkim.verify(msg, dnsfunc=lambda name, timeout=5: txt)',
    'print("PASS" if ok else "FAIL")',
  ].join('\n');
  const r = spawnSync(PY, ['-c', script, txtRecord], { input: raw, encoding: 'utf8' });
  return { ok: r.status === 0 && r.stdout.trim() === 'PASS', output: `${r.stdout}${r.stderr}`.trim() };
}
