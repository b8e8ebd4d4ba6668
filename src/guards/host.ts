/**
 * DNS-rebinding guard: a browser tricked into resolving evil.example to
 * 127.0.0.1 still sends Host: evil.example, so only known names are accepted.
 */
import type { Config } from "../config/schema";
import { ConfigError } from "../config/load";
import { AppError } from "../errors";

export class HostError extends AppError {
  constructor(host: string) {
    super(`Host '${host.slice(0, 100)}' is not allowed. Add it to allowedHosts if this is intended.`, 421, "invalid_request_error", "host_not_allowed");
  }
}

export const isLoopback = (host: string) => /^(127\.\d+\.\d+\.\d+|::1|\[::1\]|localhost)$/i.test(host);

/** The bind rule serve enforces and verify checks: loopback, or public bind explicitly allowed with auth on. */
export const bindAllowed = (c: Pick<Config, "host" | "allowPublicBind" | "auth">) => isLoopback(c.host) || (c.allowPublicBind && c.auth);

export function hostAllowlist(bindHost: string, extra: string[]): (hostHeader: string | null) => boolean {
  const names = new Set(["localhost", "127.0.0.1", "::1", "[::1]", bindHost.toLowerCase(), ...extra.map((h) => h.toLowerCase())]);
  return (header) => {
    if (!header) return false;
    const h = header.toLowerCase();
    // name, or [v6], then at most a numeric port: "[::1]evil.example" or "localhost:80@evil" name nothing we know.
    const m = /^(\[[^\]]*\]|[^:[\]]*)(?::\d{1,5})?$/.exec(h);
    return names.has(h) || (!!m && names.has(m[1]!));
  };
}

/** serve's and `config validate`'s refusal of a bind bindAllowed does not allow (exit 2). */
export function checkBind(config: Parameters<typeof bindAllowed>[0]) {
  if (!bindAllowed(config)) throw new ConfigError(`refusing to bind ${config.host}: a non-loopback address needs --allow-public-bind and auth on`);
}
