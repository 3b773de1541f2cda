#!/usr/bin/env node
// Entry point for `npx mailroom` and `npm start`. Node 24 runs the TypeScript sources directly
// (type stripping), so a fresh clone needs no build step.
import { main } from '../src/cli/main.ts';

main(process.argv.slice(2)).then(
  (code) => { if (typeof code === 'number') process.exitCode = code; },
  (err) => {
    process.stderr.write(`mailroom: ${err?.message ?? err}\n`);
    process.exitCode = 1;
  },
);
