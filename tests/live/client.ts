/** Small helpers the live tests share: files into the container, curl inside it, unit state and journal. */
import fs from "node:fs";
import path from "node:path";
import type { LiveSystemd } from "./systemd";

/** Puts a host file into the container at /srv/appliance-test/NAME; returns the container path. */
export function put(sys: LiveSystemd, from: string, name: string, mode = 0o755): string {
  const dir = path.join(sys.root, "srv/appliance-test");
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(from, path.join(dir, name));
  fs.chmodSync(path.join(dir, name), mode);
  return `/srv/appliance-test/${name}`;
}

/** curl inside the container (its network is private): status code (0 = no connection) and body. */
export function curl(sys: LiveSystemd, url: string, opts: { body?: unknown; key?: string } = {}) {
  const r = sys.exec(["curl", "-sS", "-m", "90", "-w", "\n%{http_code}", ...(opts.key ? ["-H", `Authorization: Bearer ${opts.key}`] : []),
    ...(opts.body ? ["-H", "Content-Type: application/json", "--data-binary", JSON.stringify(opts.body)] : []), url]);
  const lines = r.out.split("\n");
  return { status: Number(lines.pop()), body: lines.join("\n"), err: r.err };
}

export const journal = (sys: LiveSystemd, ...match: string[]) => sys.exec(["journalctl", "--no-pager", "-o", "cat", ...match]).out;
export const unitProp = (sys: LiveSystemd, prop: string, unit = "appliance.service") =>
  sys.exec(["systemctl", "show", "-p", prop, "--value", unit]).out.trim();
export const active = (sys: LiveSystemd, unit = "appliance.service") => sys.exec(["systemctl", "is-active", unit]).out.trim();
/** The key printed by install ("apk_…" on a line of its own). */
export const printedKey = (out: string) => /^apk_\S+$/m.exec(out)?.[0] ?? "";
