/**
 * Reads an AppArmor profile the way the kernel would match it, for machines without AppArmor: its file
 * rules and those of every file it includes (from /etc/apparmor.d), variables expanded from the tunables,
 * globs (*, **, ?, [..], {a,b}) turned into regular expressions. `allows(path, perm)` answers whether the
 * profile grants that access. Only file rules are modelled (what the strace coverage test needs); network,
 * capability and signal rules are left to the real parser (apparmor_parser -QTK).
 */
import fs from "node:fs";
import path from "node:path";

const ETC = "/etc/apparmor.d";

interface Rule { re: RegExp; perms: string; deny: boolean; source: string }

/** One AppArmor glob (variables already expanded) as an anchored regular expression. */
export function globToRegExp(glob: string): RegExp {
  let out = "", depth = 0;
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === "\\" && i + 1 < glob.length) { out += `\\${glob[++i]}`; continue; }
    if (c === "*") { if (glob[i + 1] === "*") { out += ".*"; i++; } else out += "[^/]*"; continue; }
    if (c === "?") { out += "[^/]"; continue; }
    if (c === "[") { const end = glob.indexOf("]", i + 2); out += glob.slice(i, end + 1); i = end; continue; }
    if (c === "{") { out += "(?:"; depth++; continue; }
    if (c === "}" && depth) { out += ")"; depth--; continue; }
    if (c === "," && depth) { out += "|"; continue; }
    out += c.replace(/[.+^$()|/]/g, "\\$&");
  }
  return new RegExp(`^${out}$`);
}

/** Reads variables and rules from a profile and its includes. */
export class AppArmorRules {
  readonly vars = new Map<string, string[]>();
  readonly rules: Rule[] = [];
  private seen = new Set<string>();

  constructor(profileText: string, private etc = ETC) {
    this.read(profileText, "profile");
  }

  private include(name: string) {
    const file = path.join(this.etc, name);
    if (this.seen.has(file) || !fs.existsSync(file)) return;
    this.seen.add(file);
    if (fs.statSync(file).isDirectory()) { for (const f of fs.readdirSync(file).sort()) this.include(path.join(name, f)); return; }
    this.read(fs.readFileSync(file, "utf8"), name);
  }

  /** Expands @{VAR} (several values: alternatives) and folds repeated slashes. */
  expand(s: string): string {
    for (let guard = 0; s.includes("@{") && guard < 20; guard++) {
      // A value ending in "/" followed by "/" in the rule: one slash (apparmor folds them; inside {a,b} we must).
      s = s.replace(/@\{(\w+)\}(\/?)/g, (_, v: string, slash: string) => {
        const vals = (this.vars.get(v) ?? []).map((x) => (slash && x.endsWith("/") ? x : x + slash));
        return vals.length === 1 ? vals[0]! : `{${vals.join(",")}}`;
      });
    }
    return s.replace(/\/{2,}/g, "/");
  }

  private read(text: string, source: string) {
    for (const raw of text.split("\n")) {
      const line = raw.replace(/(^|\s)#(?!include).*$/, "").trim();
      const inc = /^#?include(?:\s+if\s+exists)?\s+<([^>]+)>/.exec(line);
      if (inc) { this.include(inc[1]!); continue; }
      const v = /^@\{(\w+)\}\s*(\+?=)\s*(.*)$/.exec(line);
      if (v) {
        const vals = v[3]!.split(/\s+/).filter(Boolean).map((x) => x.replace(/^"|"$/g, ""));
        this.vars.set(v[1]!, v[2] === "+=" ? [...(this.vars.get(v[1]!) ?? []), ...vals] : vals);
        continue;
      }
      const pathFirst = /^(?:audit\s+)?(deny\s+)?(?:owner\s+)?(?:file\s+)?("?[/@][^\s"]*"?)\s+([rwaklmixPUCpuc]+)\s*(?:->\s*\S+)?,$/.exec(line);
      const permsFirst = /^(?:audit\s+)?(deny\s+)?(?:owner\s+)?([rwaklmix]+)\s+("?[/@][^\s"]*"?),$/.exec(line);
      const m = pathFirst ? { deny: !!pathFirst[1], glob: pathFirst[2]!, perms: pathFirst[3]! }
        : permsFirst ? { deny: !!permsFirst[1], glob: permsFirst[3]!, perms: permsFirst[2]! } : undefined;
      if (!m) continue;
      this.rules.push({ re: globToRegExp(this.expand(m.glob.replace(/^"|"$/g, ""))), perms: m.perms, deny: m.deny, source });
    }
  }

  /** Whether the profile grants `perm` (r, w, m, x, k, l) on an absolute path. */
  allows(file: string, perm: "r" | "w" | "m" | "x" | "k" | "l"): boolean {
    const has = (p: string) => perm === "x" ? /[iupcIUPC]x|x/.test(p) : perm === "w" ? /[wa]/.test(p) : p.includes(perm);
    const matching = this.rules.filter((r) => r.re.test(file) && has(r.perms));
    return matching.some((r) => !r.deny) && !matching.some((r) => r.deny);
  }
}
