/**
 * The network a client address belongs to, for limits that must not be dodged
 * by rotating source addresses: IPv4 /24, IPv6 /64, and all of loopback
 * (127.0.0.0/8 and ::1: one machine, however many addresses it uses).
 */

export function networkOf(ip: string): string {
  const v4 = ip.startsWith("::ffff:") && ip.includes(".") ? ip.slice(7) : ip;
  if (/^\d{1,3}(?:\.\d{1,3}){3}$/.test(v4)) {
    if (v4.startsWith("127.")) return "loopback";
    return v4.split(".").slice(0, 3).join(".") + ".0/24";
  }
  if (!ip.includes(":")) return ip; // "local", "unknown": tests and in-process requests
  const [head = "", tail] = ip.toLowerCase().split("%")[0]!.split("::") as [string, string?];
  const h = head ? head.split(":") : [], t = tail ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array(Math.max(0, 8 - h.length - t.length)).fill("0"), ...t];
  if (groups.every((g, i) => (i < 7 ? Number.parseInt(g || "0", 16) === 0 : Number.parseInt(g || "0", 16) === 1))) return "loopback";
  return groups.slice(0, 4).map((g) => Number.parseInt(g || "0", 16).toString(16)).join(":") + "::/64";
}
