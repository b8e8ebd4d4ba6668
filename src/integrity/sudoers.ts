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
        // a relative include is read from the including file's dir, as sudo reads it (second attack on the fix)
        const named = inc[2]!.trim().replace(/^"|"$/g, "");
        const target = named.startsWith("/") ? inRoot(named) : path.join(path.dirname(f), named);
        if (!inc[1]) queue.push(target);
        else dir(target);
        continue;
      }
      if (line.startsWith("#") && !/^#\d/.test(line)) continue; // a comment (`#1000 ALL=…` is a uid)
      if (!line.includes("=") || /^Defaults\b/.test(line) || /^\w+_Alias\b/.test(line)) continue;
      // The user list: the words before the host list, a comma joining them across spaces (`root, appliance`);
      // names may be quoted, `%:group` is a group, ALL is everyone (second attack on the fix).
      const words = line.split("=")[0]!.trim().split(/\s+/);
      let list = words[0] ?? "";
      for (let i = 1; i < words.length && (list.endsWith(",") || words[i]!.startsWith(",")); i++) list += words[i];
      const users = list.split(",").map((n) => n.trim().replace(/^"(.*)"$/, "$1").replace(/^%:/, "%")).filter(Boolean);
      if (users.some((n) => n === "ALL" || names.has(n))) found.push(`${f}: ${line.slice(0, 120)}`);
    }
  }
  return found;
}
