/**
 * Files that root writes into the service's state (keys, models, manifest) must
 * stay readable by the service account: they take the owner of the directory
 * they land in. A no-op unless running as root.
 */
import fs from "node:fs";
import path from "node:path";

export function inheritOwner(file: string, dir = path.dirname(file)) {
  if (process.getuid?.() !== 0) return;
  const st = fs.statSync(dir);
  if (st.uid !== 0 || st.gid !== 0) fs.chownSync(file, st.uid, st.gid);
}
