/**
 * The client's address: the socket's peer, or, when that peer is a trusted proxy (`trustedProxies`: a load balancer
 * or gateway in front), the nearest address in X-Forwarded-For that is not a trusted proxy (the rightmost one not
 * appended by a proxy of ours: what a client writes to the left of it cannot pass for it). What per-client limits (the
 * failed-auth throttle, the anonymous limit), logs and audit records name. Without it every client behind a balancer
 * was the balancer's one address (scale-out run); from a peer that is not trusted the header is never read.
 */
import { nodeNet } from "../util/node-builtins";

export function clientAddressFor(trustedProxies: readonly string[]): (peer: string, forwardedFor: string | null) => string {
  if (!trustedProxies.length) return (peer) => peer;
  const net = nodeNet();
  const list = new net.BlockList();
  for (const entry of trustedProxies) {
    const [ip = "", prefix] = entry.split("/");
    const family = net.isIP(ip) === 6 ? "ipv6" : "ipv4";
    if (prefix === undefined) list.addAddress(ip, family);
    else list.addSubnet(ip, Number(prefix), family);
  }
  const trusted = (ip: string) => {
    const family = net.isIP(ip);
    return family !== 0 && list.check(ip, family === 6 ? "ipv6" : "ipv4");
  };
  return (peer, forwardedFor) => {
    if (!trusted(peer) || !forwardedFor) return peer;
    const hops = forwardedFor.split(",").map(bare);
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hops[i]!;
      if (!net.isIP(hop)) return peer; // not an address (a port, "unknown", garbage): nothing beyond it can be trusted
      if (!trusted(hop)) return hop;
    }
    return hops[0] ?? peer; // every hop a proxy of ours: the first is where it came from
  };
}

/** A forwarded hop without what balancers add around the address: a port (1.2.3.4:5678), brackets ([2001:db8::1]:443). */
function bare(hop: string): string {
  const h = hop.trim();
  const v6 = /^\[([^\]]+)\](?::\d+)?$/.exec(h);
  if (v6) return v6[1]!;
  const v4 = /^(\d{1,3}(?:\.\d{1,3}){3}):\d+$/.exec(h);
  return v4 ? v4[1]! : h;
}
