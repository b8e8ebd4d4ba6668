/**
 * One configured upstream: where it is, the key it expects, the models it
 * serves, and what the gateway knows about it right now (requests in flight,
 * last health check, circuit breaker).
 */
import fs from "node:fs";
import { ConfigError } from "../config/load";
import { pemCertificates, readPemFile, refuseKeyReadableByAll } from "../config/pem-files";
import { nodeCrypto } from "../util/node-builtins";
import type { Config } from "../config/schema";
import { CircuitBreaker } from "./breaker";
import { endpointOf } from "./connect-probe";

export type UpstreamConfig = Config["upstreams"][number];

export class Upstream {
  /** Requests sent to it and not yet finished (the balancer's measure). */
  inflight = 0;
  /** Last active health check passed (optimistic until the first one says otherwise). */
  healthy = true;
  /** Breaker-clock time of its last answer to a request (any status); undefined: none yet (connect-probe.ts). */
  lastOkAt: number | undefined;
  readonly breaker: CircuitBreaker;
  /** Base URL without a trailing slash, e.g. http://10.0.0.5:8000/v1. */
  readonly base: string;
  /** For logs: origin and path only, never credentials or a query. */
  readonly name: string;
  /** Where the connect probe dials. */
  readonly endpoint: { host: string; port: number };

  /**
   * @param tls what fetch presents to and checks of this upstream over HTTPS (upstreamTls): a private CA, a client
   *   certificate for an upstream that asks for one
   */
  constructor(readonly models: readonly string[], url: string, private readonly key: string, breaker: CircuitBreaker, readonly tls?: UpstreamTls) {
    const u = new URL(url);
    if (u.username || u.password) throw new ConfigError("invalid config: upstreams: put the key in apiKey/apiKeyFile/apiKeyEnv, not in the URL", "upstreams");
    this.base = (u.origin + u.pathname).replace(/\/+$/, "");
    this.name = this.base;
    this.endpoint = endpointOf(this.base);
    this.breaker = breaker;
  }

  /** May the balancer pick it now. */
  usable(): boolean {
    return this.healthy && this.breaker.available();
  }

  /** Headers for a request to this upstream: its own key only (nothing the client sent). */
  headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...(this.key ? { authorization: `Bearer ${this.key}` } : {}), "user-agent": "appliance-gateway", ...extra };
  }

  /**
   * A request to this upstream (forwarding, the health check, detokenize all go through here): its own key
   * (headers) and TLS settings, and a redirect is never followed (it would carry the key to wherever it points).
   */
  send(url: string, init: { method?: "GET" | "POST"; body?: string; signal: AbortSignal; headers: Record<string, string> }): Promise<Response> {
    return fetch(url, { method: init.method ?? "GET", body: init.body, redirect: "manual", signal: init.signal, headers: this.headers(init.headers), ...(this.tls && { tls: this.tls }) });
  }
}

/** Bun fetch's `tls` for one upstream: PEM text, read once at start. */
export interface UpstreamTls { ca?: string; cert?: string; key?: string }

/**
 * The upstream's tlsCa, tlsCert and tlsKey files read (once, at start), or undefined when none is set; a file that
 * cannot be read or holds no PEM block of its kind is a ConfigError naming it (exit 2), not a handshake that fails
 * on every request.
 */
export function upstreamTls(u: UpstreamConfig): UpstreamTls | undefined {
  if (!u.tlsCa && !u.tlsCert) return undefined;
  const at = (field: string) => ({ setting: "upstreams", field });
  const out: UpstreamTls = {};
  if (u.tlsCa) {
    out.ca = readPemFile(u.tlsCa, at("tlsCa"));
    // Every CA certificate parsed: a bundle that does not parse failed every handshake with Bun's "Was there a typo in
    // the url or port?".
    pemCertificates(out.ca, u.tlsCa, at("tlsCa"));
  }
  if (u.tlsCert) {
    out.cert = readPemFile(u.tlsCert, at("tlsCert"));
    pemCertificates(out.cert, u.tlsCert, at("tlsCert"));
    out.key = readPemFile(u.tlsKey, at("tlsKey"));
    if (!/-----BEGIN (RSA |EC |ENCRYPTED )?PRIVATE KEY-----/.test(out.key)) throw new ConfigError(`invalid config: upstreams: tlsKey: ${u.tlsKey} holds no PEM private key`, "upstreams");
    // A key that is not the certificate's (or one that needs a passphrase) would fail every handshake: said at start.
    const { X509Certificate, createPrivateKey } = nodeCrypto();
    let matches = false;
    try { matches = new X509Certificate(out.cert).checkPrivateKey(createPrivateKey(out.key)); } catch (e) {
      throw new ConfigError(`invalid config: upstreams: tlsKey ${u.tlsKey} or tlsCert ${u.tlsCert} does not parse (an encrypted key is not read): ${(e as Error).message}`, "upstreams");
    }
    if (!matches) throw new ConfigError(`invalid config: upstreams: tlsKey ${u.tlsKey} is not the private key of the certificate in ${u.tlsCert}`, "upstreams");
    // The listener's rule for its own key: one every user of the machine may read is refused.
    refuseKeyReadableByAll(u.tlsKey, at("tlsKey"));
  }
  return out;
}

/** The upstream's key from apiKey, apiKeyFile (trimmed) or apiKeyEnv; a file or variable that is not there is a ConfigError. */
export function upstreamKey(u: UpstreamConfig, env: Record<string, string | undefined> = process.env): string {
  if (u.apiKey) return u.apiKey;
  if (u.apiKeyFile) {
    try {
      return fs.readFileSync(u.apiKeyFile, "utf8").trim();
    } catch (e) {
      throw new ConfigError(`invalid config: upstreams: cannot read apiKeyFile ${u.apiKeyFile}: ${(e as NodeJS.ErrnoException).code ?? e}`, "upstreams");
    }
  }
  if (u.apiKeyEnv) {
    const v = env[u.apiKeyEnv];
    if (!v) throw new ConfigError(`invalid config: upstreams: environment variable ${u.apiKeyEnv} (apiKeyEnv) is not set`, "upstreams");
    return v.trim();
  }
  return "";
}
