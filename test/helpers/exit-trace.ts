/**
 * Preloaded into every test process by `npm test` (scripts/test.ts, `--import`). When a test file's
 * process ends early, node's runner reports only "test failed" for the whole file, and CI keeps
 * only part of the output. This names the file, the exit code and who called process.exit, on stderr
 * (uncaught errors the runner reports itself), so such a failure can be told from a flaky assertion.
 */
import { writeSync } from 'node:fs';

const file = process.argv[1] ?? '(unknown file)';
const exit = process.exit.bind(process);
// Synchronous: the process may be gone before an asynchronous write would flush.
const say = (text: string) => { try { writeSync(2, `${text}\n`); } catch { /* stderr closed */ } };

process.exit = ((code?: number | string | null) => {
  say(`[exit-trace] ${file}: process.exit(${code ?? ''}) called\n${new Error('exit stack').stack}`);
  return exit(code);
}) as typeof process.exit;

process.on('exit', (code) => {
  if (code !== 0) say(`[exit-trace] ${file}: exiting with code ${code} (exitCode ${process.exitCode ?? 'unset'})`);
});
