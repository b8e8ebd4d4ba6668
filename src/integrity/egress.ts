/**
 * Is the unit's egress lock (IPAddressDeny=any, a BPF program systemd attaches to the service's cgroup)
 * really in effect? systemd silently leaves it out where the kernel or the container cannot attach BPF.
 * Checked from inside the service (the pre-start verify shares its cgroup): a datagram to a
 * non-loopback address must be refused at once with EPERM, which only the filter does. Any other
 * outcome (sent) means nothing but luck stops the server from talking out. The probe goes to one of this machine's own non-loopback addresses (always routable,
 * even air-gapped, and it reaches no one else), else to TEST-NET-1 (RFC 5737).
 */
import fs from "node:fs";
import { nodeDgram } from "../util/node-builtins";
import os from "node:os";
import type { Config } from "../config/schema";
import type { Check } from "./report";

/** The OTLP collector's address (an IP literal, as the config requires), which the unit's egress lock lets through. */
export function otlpAllow(config: Partial<Pick<Config, "tracing">>): string[] {
  const endpoint = config.tracing?.otlpEndpoint;
  if (!endpoint) return [];
  const host = new URL(endpoint).hostname.replace(/^\[|\]$/g, "");
  return host === "localhost" ? [] : [host];
}

/** This machine's own IPv4 addresses. The service may not open netlink sockets (getifaddrs fails), so /proc/net/fib_trie. */
function ownAddresses(): string[] {
  try {
    return Object.values(os.networkInterfaces()).flat().filter((a) => a?.family === "IPv4").map((a) => a!.address);
  } catch {
    const trie = (() => { try { return fs.readFileSync("/proc/net/fib_trie", "utf8"); } catch { return ""; } })();
    return [...trie.matchAll(/\|-- (\d+\.\d+\.\d+\.\d+)\n\s+\/32 host LOCAL/g)].map((m) => m[1]!);
  }
}

/** `allowed`: addresses the unit lets through on purpose (the OTLP collector); a probe there would pass. */
export function probeTarget(allowed: string[] = [], own = ownAddresses()): { host: string; port: number } {
  const target = own.find((a) => !a.startsWith("127.") && !allowed.includes(a));
  return { host: target ?? "192.0.2.1", port: 9 };
}

/** One UDP datagram: the filter makes sendto fail with EPERM at once (a dropped TCP SYN would only time out). */
function sendOutcome(target: { host: string; port: number }, timeoutMs: number): Promise<string> {
  return new Promise((resolve) => {
    const sock = nodeDgram().createSocket("udp4");
    const timer = setTimeout(() => done("timeout"), timeoutMs);
    function done(what: string) { clearTimeout(timer); try { sock.close(); } catch { /* closed */ } resolve(what); }
    sock.once("error", (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
    sock.send(Buffer.from("appliance egress probe"), target.port, target.host, (e) => done(e ? (e as NodeJS.ErrnoException).code ?? e.message : "sent"));
  });
}

export async function checkEgress(inService: boolean, publicBind: boolean, policy: "require" | "warn" = "require", timeoutMs = 2000,
  allowed: string[] = []): Promise<Check> {
  if (!inService) return { name: "egress", status: "skip", detail: "checked inside the service before each start" };
  if (publicBind) return { name: "egress", status: "skip", detail: "public bind: the unit allows every address (IPAddressAllow=any), so there is no IP lock to check" };
  const target = probeTarget(allowed);
  const outcome = await sendOutcome(target, timeoutMs);
  if (outcome === "EPERM" || outcome === "EACCES") {
    return { name: "egress", status: "ok", detail: `a datagram to ${target.host} refused by the IP firewall (${outcome})` };
  }
  if (outcome === "ENETUNREACH" || outcome === "EHOSTUNREACH") {
    return { name: "egress", status: "unknown", detail: `no non-loopback address or route to probe the IP firewall with (${outcome})` };
  }
  const why = `egress lock not in effect: a datagram to ${target.host} gave ${outcome}, not EPERM ` +
    // Either cause: a drop-in that emptied IPAddressDeny= read as systemd's fault alone (live-service run).
    "(a drop-in under /etc/systemd/system/appliance.service.d that resets IPAddressDeny=/IPAddressAllow=, or systemd could not " +
    "attach its BPF IP firewall here: `systemctl cat appliance` shows the first; see the README's egress lock section)";
  // "warn": the operator chose to run without it; not a failure, so the start goes on, but said loudly.
  if (policy === "warn") return { name: "egress", status: "unknown", detail: `WARNING: ${why}; starting anyway (egressLock is "warn")` };
  return { name: "egress", status: "fail", detail: why };
}
