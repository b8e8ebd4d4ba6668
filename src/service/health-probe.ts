/**
 * The installed (or smoke-started) server's /health, as install, update, rollback and status wait for it.
 *
 * A server with tlsCert speaks HTTPS only: the probe asked http:// and read the reset as "down", so `update` rolled
 * back every update of a TLS server. It now asks https:// without checking the certificate: it talks to this
 * machine's own server over loopback (serve itself checked the certificate at start) and sends nothing secret.
 * With tlsClientCa (mTLS) the server answers no client without a certificate, and these commands have none: there
 * a TLS handshake that reaches the server's certificate request counts as up (serve listens only once its models
 * are loaded; under systemd, `systemctl restart` has already waited for its READY=1).
 */
import tls from "node:tls";

export interface Health { ok: boolean; reason?: string; note?: string }

/** fetch's options for one look at a /health URL: https without checking the certificate (above). */
export const probeInit = (url: string, timeoutMs: number): RequestInit =>
  ({ signal: AbortSignal.timeout(timeoutMs), ...(/^https:/i.test(url) && { tls: { rejectUnauthorized: false } }) });

/**
 * Polls `url` (…/health) until it answers 2xx or `timeoutMs` passes. mtls: the config has tlsClientCa, so a server
 * that asks for a client certificate is taken as up (only then: a foreign TLS server asking for one is not ours).
 */
export async function waitHealthy(url: string, timeoutMs: number, opts: { mtls?: boolean } = {}): Promise<Health> {
  const deadline = Date.now() + timeoutMs;
  let last = "no answer";
  while (Date.now() < deadline) {
    try {
      const r = await fetch(url, probeInit(url, 2000));
      if (r.ok) return { ok: true };
      last = `HTTP ${r.status}`;
    } catch (e) {
      // Bun's message for a refused connection asks "Is the computer able to access the url?": its code says it plainly;
      // a timeout is a DOMException, whose code is a number ("(23)" was printed).
      const code = (e as NodeJS.ErrnoException).code;
      last = code === "ConnectionRefused" || code === "ECONNREFUSED" ? "connection refused"
        : (e as Error).name === "TimeoutError" ? "timed out" : typeof code === "string" ? code : (e as Error).message;
      if (opts.mtls && code === "EPROTO" && await asksForClientCertificate(url)) {
        return { ok: true, note: "the server requires a client certificate (mTLS), so /health itself was not read: its TLS handshake was" };
      }
    }
    await Bun.sleep(250);
  }
  return { ok: false, reason: `${url} did not answer within ${timeoutMs / 1000} s (${last})` };
}

/** True when the server at url completes its side of a TLS handshake and then refuses us for want of a client certificate. */
export function asksForClientCertificate(url: string, timeoutMs = 2000): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    let served = false;
    const socket = tls.connect({ host: hostname.replace(/^\[|\]$/g, ""), port: Number(port || 443), rejectUnauthorized: false, servername: "" });
    const done = (v: boolean) => { clearTimeout(timer); socket.destroy(); resolve(v); };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on("secureConnect", () => { served = !!socket.getPeerCertificate()?.subject; });
    socket.on("error", (e) => done(served && /CERTIFICATE_REQUIRED|HANDSHAKE_FAILURE/i.test((e as NodeJS.ErrnoException).code ?? e.message)));
    socket.on("close", () => done(false));
  });
}
