/**
 * sudoers lines that grant an account, or a group it is in, anything: a line whose first field (a comma list) names
 * it (`name`, `#uid`), or one of its groups (`%group`, `%#gid`), in /etc/sudoers and the files and dirs it includes
 * (`@include`, `@includedir`, and their `#` spellings; sudoers.d files with a `.` in the name or ending in `~` are
 * skipped, as sudo skips them). A read, not a parse: aliases that name it are not followed. A `NOPASSWD: ALL` for the
 * service account in sudoers.d passed verify's account check as "no admin group" (claims audit), and so did a comma
 * list, a uid, a gid and an included dir (attack on the fix).
 */
import fs from "node:fs";
import path from "node:path";
import type { Account } from "../service/accounts";

/** Most files read (includes of includes): a loop of includes ends here. */
const MAX_FILES = 256;

export function sudoersNaming(root: string, a: Account): string[] {
  const names = new Set([a.name, `#${a.uid}`, ...a.groups.map((g) => `%${g}`), ...(a.gids ?? [a.gid]).map((g) => `%#${g}`)]);
  const queue = [path.join(root, "etc/sudoers")], seen = new Set<string>(), found: string[] = [];
  const inRoot = (p: string) => path.join(root, p);
  const dir = (d: string) => { try { for (const e of fs.readdirSync(d).sort()) if (!e.includes(".") && !e.endsWith("~")) queue.push(path.join(d, e)); } catch { /* none */ } };
  dir(inRoot("etc/sudoers.d")); // read even where /etc/sudoers does not include it (every distribution's does)
  while (queue.length && seen.size < MAX_FILES) {
    const f = queue.shift()!;
    if (seen.has(f)) continue;
    seen.add(f);
    let text: string;
    try { text = fs.readFileSync(f, "utf8"); } catch { continue; }
    for (const raw of text.replace(/\\\n/g, " ").split("\n")) {
      const line = raw.trim();
      const inc = /^[@#]include(dir)?\s+(.+)$/.exec(line);
      if (inc) {
        const target = inRoot(inc[2]!.trim().replace(/^"|"$/g, ""));
        if (!inc[1]) queue.push(target);
        else dir(target);
        continue;
      }
      if (line.startsWith("#") && !/^#\d/.test(line)) continue; // a comment (`#1000 ALL=…` is a uid)
      const first = line.split(/\s+/)[0] ?? "";
      if (first.split(",").some((n) => names.has(n.trim()))) found.push(`${f}: ${line.slice(0, 120)}`);
    }
  }
  return found;
}
