/**
 * "10.0.0.1", "10.0.0.0/8", "fd00::/8": an IP address, or one with a prefix length that fits its family. An IPv4
 * address written IPv6-mapped (::ffff:10.0.0.0) takes no prefix: node's BlockList reads "::ffff:10.0.0.0/8" as ::/8,
 * which holds every IPv4 client (fix-attack run 2); write the range as IPv4.
 */
import { nodeNet } from "../util/node-builtins";

export function isAddressOrRange(s: string): boolean {
  const [ip = "", prefix, extra] = s.split("/");
  const family = nodeNet().isIP(ip);
  if (!family || extra !== undefined) return false;
  if (prefix === undefined) return true;
  if (/^::ffff:/i.test(ip)) return false;
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128);
}
