/**
 * One builder per cache directory (peer-build.ts and engine-build.ts): a lock file created exclusively holds the
 * builder's pid; another caller waits while that process lives and then takes the finished build from its stamp.
 * A killed builder's lock is taken over, so it never blocks the next build forever.
 */
import fs from "node:fs";
import path from "node:path";

/** Is the process that wrote this lock file still alive? */
function lockHolderAlive(lock: string): boolean {
  try {
    const pid = Number(fs.readFileSync(lock, "utf8"));
    if (!pid) return false;
    process.kill(pid, 0);
    return true;
  } catch { return false; }
}

/**
 * Takes `<dir>/build.lock`. Resolves to `{ done }` when another process finished the build while this one waited
 * (read by `stamped`), else to `{ lock }`: the lock is held, and the caller removes that file when it is done.
 */
export async function takeBuildLock<T>(dir: string, stamped: (dir: string) => T | null, label: string, log: (line: string) => void): Promise<{ done: T } | { lock: string }> {
  const lock = path.join(dir, "build.lock");
  for (;;) {
    try { fs.writeFileSync(lock, String(process.pid), { flag: "wx" }); return { lock }; } catch { /* held */ }
    if (!lockHolderAlive(lock)) { fs.rmSync(lock, { force: true }); continue; }
    log(`${label}: another process (pid ${fs.readFileSync(lock, "utf8")}) is building in ${dir}; waiting`);
    while (fs.existsSync(lock) && lockHolderAlive(lock)) await Bun.sleep(5000);
    const done = stamped(dir);
    if (done) return { done };
  }
}
