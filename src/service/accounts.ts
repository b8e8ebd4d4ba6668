/** Reading (not changing) the service account: passwd/group files on Linux, dscl on macOS. */
import fs from "node:fs";
import path from "node:path";

/** `gids`: every group it is in, primary included (Linux; undefined where not read). */
export interface Account { name: string; uid: number; gid: number; shell: string; groups: string[]; gids?: number[] }

/** From <root>/etc/passwd and <root>/etc/group; undefined if the files or the account are missing. */
export function readAccount(name: string, root = "/"): Account | undefined | null {
  const passwd = path.join(root, "etc/passwd"), group = path.join(root, "etc/group");
  if (process.platform === "darwin" && root === "/") return readDarwinAccount(name);
  if (!fs.existsSync(passwd)) return null; // cannot tell
  const line = fs.readFileSync(passwd, "utf8").split("\n").find((l) => l.split(":")[0] === name);
  if (!line) return undefined;
  const [, , uid, gid, , , shell] = line.split(":");
  const lines = fs.existsSync(group)
    ? fs.readFileSync(group, "utf8").split("\n").filter((l) => {
        const [gname, , ggid, members] = l.split(":");
        return gname && (ggid === gid || (members ?? "").split(",").includes(name));
      })
    : [];
  const groups = lines.map((l) => l.split(":")[0]!);
  const gids = [...new Set([Number(gid), ...lines.map((l) => Number(l.split(":")[2]))])];
  return { name, uid: Number(uid), gid: Number(gid), shell: shell ?? "", groups, gids };
}

function readDarwinAccount(name: string): Account | undefined {
  const read = (key: string) => {
    const r = Bun.spawnSync(["dscl", ".", "-read", `/Users/${name}`, key], { stderr: "ignore" });
    return r.exitCode === 0 ? r.stdout.toString().split(":").slice(1).join(":").trim() : undefined;
  };
  const uid = read("UniqueID");
  if (uid === undefined) return undefined;
  const groups = Bun.spawnSync(["id", "-Gn", name], { stderr: "ignore" }).stdout.toString().trim().split(/\s+/).filter(Boolean);
  return { name, uid: Number(uid), gid: Number(read("PrimaryGroupID") ?? -1), shell: read("UserShell") ?? "", groups };
}

export const NO_LOGIN_SHELLS = ["/usr/sbin/nologin", "/sbin/nologin", "/bin/false", "/usr/bin/false"];
/**
 * Groups that make an account an administrator, or as good as root: sudo's, and those whose members can take root
 * (docker, lxd, incus, libvirt: a container or VM with the host's disk; disk, kmem: raw devices and memory) or read every
 * account's password hash (shadow). Only the first four were checked (claims audit).
 */
export const ADMIN_GROUPS = ["sudo", "admin", "wheel", "root", "docker", "lxd", "incus", "incus-admin", "libvirt", "disk", "kmem", "shadow"];
