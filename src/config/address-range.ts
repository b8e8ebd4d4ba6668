/** "10.0.0.1", "10.0.0.0/8", "fd00::/8": an IP address, or one with a prefix length that fits its family. */
import net from "node:net";

export function isAddressOrRange(s: string): boolean {
  const [ip = "", prefix, extra] = s.split("/");
  const family = net.isIP(ip);
  if (!family || extra !== undefined) return false;
  if (prefix === undefined) return true;
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128);
}
