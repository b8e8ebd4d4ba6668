/**
 * The environment a systemd unit gives its service, read from files (verify outside the service, the daily check): the
 * unit's `Environment=` lines, then its drop-ins' (`<unit>.d/*.conf` and `service.d/*.conf` for every service, under
 * /etc, /run and /usr/lib, in file-name order as systemd merges them), with the files `EnvironmentFile=` names. Only
 * the unit was read, so a drop-in's secret passed as "no secrets" (claims audit); then a quoted assignment, a `/run`
 * or `service.d` drop-in and a continued line were misread (attack on the fix).
 */
import fs from "node:fs";
import path from "node:path";

/** systemd's quoting: assignments split at whitespace outside quotes, each unquoted. */
function assignments(s: string): [string, string][] {
  const out: [string, string][] = [];
  for (const m of s.matchAll(/"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g)) {
    const word = m[1] ?? m[2] ?? m[3]!;
    const eq = word.indexOf("=");
    if (eq > 0) out.push([word.slice(0, eq), unquote(word.slice(eq + 1))]);
  }
  return out;
}
const unquote = (v: string) => (/^(["']).*\1$/s.test(v) ? v.slice(1, -1) : v);

/** Drop-in files for `unitFile` under `root`, in the order systemd applies them (by name; /etc over /run over /usr/lib). */
function dropIns(root: string, unitFile: string): string[] {
  const name = path.basename(unitFile);
  const byName = new Map<string, string>();
  for (const base of ["usr/lib/systemd/system", "run/systemd/system", "etc/systemd/system"]) {
    for (const d of [`${name}.d`, "service.d"]) {
      const dir = path.join(root, base, d);
      try { for (const f of fs.readdirSync(dir)) if (f.endsWith(".conf")) byName.set(f, path.join(dir, f)); } catch { /* none */ }
    }
  }
  return [...byName.keys()].sort().map((f) => byName.get(f)!);
}

export function unitEnvironment(root: string, unitFile: string, unitText: string): Record<string, string> {
  const env: Record<string, string> = {};
  const texts = [unitText, ...dropIns(root, unitFile).map((f) => { try { return fs.readFileSync(f, "utf8"); } catch { return ""; } })];
  for (const t of texts) {
    for (const raw of t.replace(/\\\n/g, " ").split("\n")) {
      const line = raw.trim();
      const m = /^Environment\s*=(.*)$/.exec(line); // spaces around `=` are systemd's too (second attack on the fix)
      if (m) {
        if (m[1]!.trim() === "") for (const k of Object.keys(env)) delete env[k]; // empty: the list reset
        else for (const [k, v] of assignments(m[1]!)) env[k] = v;
      }
      const file = /^EnvironmentFile\s*=\s*-?(.+)$/.exec(line)?.[1]?.trim();
      if (!file) continue;
      let body = "";
      try { body = fs.readFileSync(path.join(root, file), "utf8"); } catch { /* missing: systemd refuses it, or skips it with "-" */ }
      for (const kv of body.split("\n")) {
        const a = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$/.exec(kv);
        if (a) env[a[1]!] = unquote(a[2]!.trim());
      }
    }
  }
  return env;
}
