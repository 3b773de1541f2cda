/**
 * `npm test`: the whole suite, every file on both engines (embedded PGlite and PostgreSQL; see
 * test/helpers/mailroom.ts). Files run in parallel processes. Extra arguments are passed to
 * `node --test` (e.g. `npm test -- test/roundtrip.test.ts`).
 *   MAILROOM_TEST_ENGINES=pglite        run one engine only
 *   MAILROOM_TEST_DATABASE_URL=…        PostgreSQL to use (default postgres://postgres@127.0.0.1:5432/test)
 *   MAILROOM_TEST_CONCURRENCY=N         parallel test files (default 4)
 */
import { spawn } from 'node:child_process';

const files = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const flags = process.argv.slice(2).filter((a) => a.startsWith('-'));
const args = [
  // Names the file and the caller when a test process exits early (see the file).
  '--import', './test/helpers/exit-trace.ts',
  '--test',
  `--test-concurrency=${process.env.MAILROOM_TEST_CONCURRENCY ?? '4'}`,
  '--test-timeout=600000',
  ...flags,
  ...(files.length ? files : ['test/**/*.test.ts']),
];
const child = spawn(process.execPath, args, { stdio: 'inherit' });
child.on('exit', (code, signal) => process.exit(signal ? 1 : (code ?? 1)));
