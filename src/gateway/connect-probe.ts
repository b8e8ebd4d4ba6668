/**
 * A TCP connect of our own, with its own deadline, before an attempt on an
 * upstream that is not known to be reachable. Bun's fetch has no connect
 * timeout (only the whole request's signal), so an upstream whose SYNs are
 * dropped (host gone, firewall, a full accept backlog) would hold the attempt
 * until firstByteTimeoutMs — which must be long, since a non-streamed answer's
 * headers come only once it is generated. The probe bounds the connect phase
 * alone; it is skipped while requests to the upstream keep succeeding (then
 * fetch reuses its pooled connections and the probe would only add a round trip).
 */
import { nodeNet } from "../util/node-builtins";
import { AttemptFailure } from "./errors";

/** A success within this long makes the upstream "known reachable": no probe before the next attempt. */
export const WARM_MS = 5_000;

/** host and port of a base URL (default ports for http/https). */
export function endpointOf(base: string): { host: string; port: number } {
  const u = new URL(base);
  return { host: u.hostname.replace(/^\[|\]$/g, ""), port: Number(u.port || (u.protocol === "https:" ? 443 : 80)) };
}

/** Resolves once a TCP connection opens (then closes it); an AttemptFailure when it cannot within `ms`. */
export function connectProbe(endpoint: { host: string; port: number }, ms: number, signal: AbortSignal): Promise<AttemptFailure | undefined> {
  return new Promise((resolve) => {
    const socket = nodeNet().connect({ host: endpoint.host, port: endpoint.port });
    const done = (f: AttemptFailure | undefined) => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      socket.destroy();
      resolve(f);
    };
    const onAbort = () => done(undefined); // the caller sees its own signal
    const timer = setTimeout(() => done(new AttemptFailure(`no connection within ${ms} ms (connect timeout)`, "timeout")), ms);
    signal.addEventListener("abort", onAbort, { once: true });
    socket.once("connect", () => done(undefined));
    // The error's code, not its message: Node's names the address ("connect ECONNREFUSED 10.0.0.5:8000"), and the
    // failure reaches the client's error (no upstream address is ever in a message; red-team run).
    socket.once("error", (e) => done(new AttemptFailure(`cannot reach it (${(e as NodeJS.ErrnoException).code ?? "connect failed"})`, "network")));
  });
}
