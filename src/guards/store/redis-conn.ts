/**
 * The one Redis connection of an instance (Bun's built-in RedisClient), made for the request path:
 * every call has a deadline, nothing is queued while disconnected (a command either reaches Redis
 * now or fails now), and a lost connection is re-opened by the next call at most once a second, so
 * an outage costs a request one failed connect per second at worst, not one per request. Up/down
 * transitions are logged loudly, and the state is readable through status().
 */
import { RedisClient } from "bun";
import type { Logger } from "../../log/logger";
import { redisRefusal } from "./redis-refusal";

const LOGIN_HINT = "check rateLimit.redisPasswordFile / redisPasswordEnv and the user in redisUrl";

/** Redis did not answer (down, slow, refused the login): the caller applies the unreachable-Redis policy. */
export class RedisUnavailableError extends Error {}

export interface RedisConnOptions {
  url: string;
  password?: string;
  timeoutMs: number;
  log: Pick<Logger, "error" | "warn" | "info">;
  /** Time between two connection attempts while Redis is down. */
  retryMs?: number;
  /** Time between two "still unreachable" log lines. */
  logEveryMs?: number;
}

export interface RedisConnStatus {
  up: boolean;
  /** ms timestamp of the last up/down change (0: never connected yet). */
  since: number;
  lastError?: string;
  /** Shared-state operations answered without Redis since the start, by operation (noteFallback's `what`). */
  fallbacks: Record<string, number>;
}

export class RedisConn {
  private client: RedisClient | undefined;
  private connecting: Promise<RedisClient> | undefined;
  private nextAttempt = 0;
  private state: Omit<RedisConnStatus, "fallbacks"> = { up: false, since: 0 };
  private lastLog = 0;
  private readonly shas = new Map<string, string>();
  /**
   * Operations answered without Redis since it went down (the callers count them through noteFallback): a limit
   * check, a nonce check, a revocation read; one request makes one to four. For the log's "still unreachable" lines.
   */
  private fallbacks = 0;
  /** The same since the start, by operation, never reset (status(): /metrics' counter). */
  private readonly fallbackTotals = new Map<string, number>();

  constructor(private readonly o: RedisConnOptions) {}

  status(): RedisConnStatus { return { ...this.state, fallbacks: Object.fromEntries(this.fallbackTotals) }; }

  /** One command with the deadline; throws RedisUnavailableError for anything that is not Redis answering. */
  async send(cmd: string, args: string[]): Promise<unknown> {
    const client = await this.connected();
    try {
      return await this.deadline(client.send(cmd, args), `${cmd} took longer than ${this.o.timeoutMs} ms`);
    } catch (e) {
      if (isScriptOrCommandError(e)) throw e; // Redis answered: a bug or NOSCRIPT, not an outage
      this.down(e);
      throw new RedisUnavailableError((e as Error).message);
    }
  }

  /** Runs a Lua script by its sha (EVALSHA), loading it with EVAL the first time Redis does not know it. */
  async script(source: string, keys: string[], args: (string | number)[]): Promise<unknown> {
    let sha = this.shas.get(source);
    if (!sha) this.shas.set(source, (sha = new Bun.CryptoHasher("sha1").update(source).digest("hex")));
    const rest = [String(keys.length), ...keys, ...args.map(String)];
    try {
      return await this.send("EVALSHA", [sha, ...rest]);
    } catch (e) {
      if (!/NOSCRIPT/.test((e as Error).message)) throw e;
      return this.send("EVAL", [source, ...rest]);
    }
  }

  /**
   * An operation was answered without Redis: served with per-instance state (policy "local") or its request
   * refused with 503 ("refuse"). Counted, and logged as an error at once and then at most every logEveryMs.
   */
  noteFallback(what: string, refused = false) {
    this.fallbacks++;
    this.fallbackTotals.set(what, (this.fallbackTotals.get(what) ?? 0) + 1);
    const now = Date.now();
    if (now - this.lastLog < (this.o.logEveryMs ?? 10_000)) return;
    this.lastLog = now;
    this.o.log.error({ redis: "down", lastError: this.state.lastError, fallbacks: this.fallbacks, what },
      refused ? "shared state: Redis unreachable, refusing requests with 503 (rateLimit.redisUnavailable \"refuse\") until it is back"
        : "shared state: Redis unreachable, limits, nonces and revocations are per instance until it is back (rateLimit.redisUnavailable \"local\")");
  }

  /**
   * Why a call failed with `message`, in Redis's own words when it refused the login (Bun's client says only
   * "Connection closed", a network fault's words): for a command's one-line answer (`keys revoke`).
   */
  async explain(message: string): Promise<string> {
    if (!/connection closed/i.test(message)) return message;
    const refusal = await redisRefusal(this.o.url, this.o.password, this.o.timeoutMs);
    return refusal ? `Redis refused the login: ${refusal}; ${LOGIN_HINT}` : message;
  }

  close() {
    try { this.client?.close(); } catch { /* already closed */ }
    this.client = undefined;
  }

  private async connected(): Promise<RedisClient> {
    if (this.client?.connected) return this.client;
    if (this.connecting) return this.connecting;
    if (Date.now() < this.nextAttempt) throw new RedisUnavailableError(this.state.lastError ?? "Redis unreachable");
    this.connecting = this.open().finally(() => { this.connecting = undefined; });
    return this.connecting;
  }

  private async open(): Promise<RedisClient> {
    this.close();
    // autoReconnect off: reconnects happen here, on the request path, at most once per retryMs.
    const client = new RedisClient(this.o.password ? withPassword(this.o.url, this.o.password) : this.o.url, {
      connectionTimeout: this.o.timeoutMs, autoReconnect: false, enableOfflineQueue: false, enableAutoPipelining: true,
    });
    try {
      await this.deadline(client.connect(), `connecting took longer than ${this.o.timeoutMs} ms`);
    } catch (e) {
      try { client.close(); } catch { /* never opened */ }
      this.nextAttempt = Date.now() + (this.o.retryMs ?? 1000);
      this.down(e);
      throw new RedisUnavailableError((e as Error).message);
    }
    this.client = client;
    if (!this.state.up) {
      if (this.state.since) this.o.log.warn({ redis: "up", fallbacks: this.fallbacks }, "shared state: Redis reachable again, limits are shared again");
      else this.o.log.info({ redis: "up" }, "shared state: connected to Redis");
      this.state = { up: true, since: Date.now() };
      this.fallbacks = 0;
    }
    return client;
  }

  private down(e: unknown) {
    const message = redact((e as Error)?.message ?? String(e));
    if (this.state.up || this.state.since === 0) {
      this.state = { up: false, since: Date.now(), lastError: message };
      this.lastLog = 0; // the first request answered without Redis says how
      this.o.log.error({ redis: "down", err: message }, "shared state: Redis unreachable");
      // Bun says only "Connection closed" when Redis refused the login: ask Redis itself, once per outage.
      if (/connection closed/i.test(message)) {
        void redisRefusal(this.o.url, this.o.password, this.o.timeoutMs).then((refusal) => {
          if (refusal) this.o.log.error({ redis: "down", err: refusal }, `shared state: Redis refused the login (${LOGIN_HINT})`);
        });
      }
    } else this.state.lastError = message;
    const client = this.client;
    this.client = undefined;
    try { client?.close(); } catch { /* gone */ }
  }

  private deadline<T>(p: Promise<T>, message: string): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const t = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(message)), this.o.timeoutMs); });
    return Promise.race([p, t]).finally(() => clearTimeout(timer));
  }
}

/**
 * Errors Redis itself replied with (ERR, NOSCRIPT, WRONGTYPE): the connection is fine. Replies that mean
 * it cannot serve us now (not logged in, still loading, a read-only replica after a failover) count as down.
 */
function isScriptOrCommandError(e: unknown): boolean {
  const m = (e as Error)?.message ?? "";
  const serverReply = (e as { code?: string })?.code === "ERR_REDIS_SERVER_ERROR" || /^(ERR|NOSCRIPT|WRONGTYPE)\b/.test(m);
  return serverReply && !/^(NOAUTH|WRONGPASS|LOADING|READONLY|MASTERDOWN|BUSY|NOPERM)\b/.test(m);
}

/**
 * The URL with the password in its user part, where Bun's client takes it (it logs in during connect; a
 * later AUTH would come too late). A unix-socket URL needs a host there: redis+unix://:pw@localhost/path.
 */
export function withPassword(url: string, password: string): string {
  const m = /^([a-z+]+):\/\/(?:([^:@/]*)(?::[^@/]*)?@)?([^/]*)(\/.*)?$/i.exec(url);
  if (!m) return url;
  const [, scheme, user = "", host, rest = ""] = m;
  const unix = scheme!.toLowerCase().includes("unix");
  return `${scheme}://${user}:${encodeURIComponent(password)}@${unix && !host ? "localhost" : host}${rest}`;
}

/** Never log a password a URL may carry. */
const redact = (s: string) => s.replace(/\/\/[^@/\s]*@/g, "//***@");
