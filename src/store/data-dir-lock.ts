import { open, readFile, rm } from 'node:fs/promises';
import path from 'node:path';

/**
 * PGlite allows exactly one process per data directory (two writers corrupt its WAL, see
 * electric-sql/pglite#327), so `serve` takes this lock first. The lock is a file created with
 * O_EXCL holding the owner's pid; a lock whose pid no longer runs (after kill -9) is stale and taken over.
 */
export class DataDirLockedError extends Error {
  readonly pid: number;
  constructor(dir: string, pid: number) {
    super(`the data directory ${dir} is in use by another Mailroom process (pid ${pid}); stop it first, or use a different MAILROOM_DATA_DIR`);
    this.pid = pid;
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function lockDataDir(dir: string): Promise<() => Promise<void>> {
  const file = path.join(dir, 'mailroom.lock');
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await open(file, 'wx', 0o644);
      await fh.writeFile(String(process.pid));
      await fh.sync();
      await fh.close();
      return async () => { await rm(file, { force: true }); };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim());
      if (pid && pid !== process.pid && isRunning(pid)) throw new DataDirLockedError(dir, pid);
      await rm(file, { force: true }); // stale: its owner is gone
    }
  }
  throw new Error(`could not lock the data directory ${dir}`);
}
