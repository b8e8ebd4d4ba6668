/**
 * The guard pipeline, in its one fixed order:
 *   host → CORS → body size → auth (+ failed-auth limit) → signature → rate limit
 *   → schema bounds (zod, in the route) → prompt guard → engine
 *   → response scanner → audit record.
 * Every refusal is an AppError (OpenAI-shaped by server/errors.ts); every
 * decision is recorded on the request state, never with prompt text.
 */
import type { Config } from "../config/schema";
import type { ChatTurn } from "../engine/engine";
import type { Engine } from "../engine/engine";
import { AppError, CancelledError } from "../errors";
import type { AuditLog, RequestSummary } from "../log/audit";
import type { Logger } from "../log/logger";
import type { RequestState } from "../server/request-state";
import { AuthError, checkScope, isPublic, presentedKey } from "./auth";
import { corsGuard } from "./cors";
import { networkOf } from "./network";
import { HostError, hostAllowlist } from "./host";
import { lockdownGuard } from "./lockdown";
import type { KeyRecord, KeyStore } from "./keys";
import { BodyTimeoutError, BodyTooLargeError, checkEncoding, declaredLength, readBodyBytes, tokenReservation, withDeadline } from "./body";
import { checkBounds } from "./bounds";
import { LineSampler } from "./log-sampler";
import { createPromptGuard } from "./prompt-guard";
import { RateLimitError } from "./rate-limit";
import { createScanner, passthrough, type TextFilter } from "./response-scan";
import { SignatureError, verifySignature } from "./signature";
import { SignatureFloor } from "./signature-floor";
import { SharedStateUnavailableError, type Slot, type Where } from "./store/limiter";
import { createSharedState, type SharedStateStatus } from "./store/shared-state";

export { BodyTooLargeError };

export interface Guards {
  onRequest(request: Request, state: RequestState): Promise<Response | undefined>;
  readBody(request: Request, state: RequestState): Promise<string>;
  /** After the body is read, before schema validation: signature, then rate limit (`body` as parsed, unvalidated). */
  afterParse(request: Request, state: RequestState, body?: unknown): Promise<void>;
  /**
   * A valid key's request refused before afterParse ran (wrong scope, unknown route, a body that does not parse)
   * goes through it now, so it counts against the key like any other request and carries its x-ratelimit-*
   * headers. Answers the error to send: the signature's or the limiter's refusal, when there is one, else `error`.
   */
  refused(request: Request, state: RequestState, error: AppError): Promise<AppError>;
  /**
   * Bounds, then the prompt guard over every text the prompt is made of; `messages`: how many of them are the
   * request's messages (tool definitions and call arguments are text too, but no message: `maxMessages` counts messages).
   */
  prompt(state: RequestState, model: string, turns: ChatTurn[], messages?: number, param?: string): ChatTurn[];
  /**
   * A response filter; `answer`: for the answer's text (not a call's arguments, a name, an id or an error), which
   * starts inside a key the prompt left open; `json`: the text is JSON (a response_format answer, a call's arguments).
   */
  responseFilter(state: RequestState, answer?: boolean, json?: boolean): TextFilter;
  /** Tokens are known: charge them and free the concurrency slot now, not when the socket closes. Idempotent. */
  settle(state: RequestState): void;
  /** Settles the request and adds the response findings to its decisions; false when this request is one of the anonymous ones left out of log and audit. */
  onFinish(state: RequestState): boolean;
  /** Appends the finished request's summary to the audit log (a failed write is logged: the response is out). */
  record(summary: RequestSummary): void;
  /** Where limits, nonces and revocations live and, with Redis, whether it answers (for /health and /metrics). */
  sharedState(): SharedStateStatus;
  /** Stops the Redis connection and lease renewals (tests; serve exits instead). */
  close(): void;
  /** Builds now what the first request would otherwise build (the response scanner's hold-back analysis). */
  prepare(): void;
}

export interface GuardDeps {
  config: Readonly<Config>;
  engine: Pick<Engine, "specialTokens">;
  keys?: KeyStore;
  audit?: AuditLog;
  log: Logger;
  /** ms wall clock, injected for rate limits and signatures. */
  clock: () => number;
}

interface Extra {
  key?: KeyRecord; limitChecked?: boolean; rawBody?: string; slot?: Slot; admitted?: Where; reserved?: number; filters?: TextFilter[]; settled?: boolean;
  /** The prompt leaves a private key open (Scanner.opensKey): every response filter starts inside it. */
  keyOpen?: boolean;
  /** A signing key's request whose signature is not checked yet: the slot its body holds, on its address's network. */
  unsigned?: { id: string; slot: Slot };
}
const extras = new WeakMap<RequestState, Extra>();
const extra = (s: RequestState) => { let e = extras.get(s); if (!e) extras.set(s, (e = {})); return e; };

export function createGuards(d: GuardDeps): Guards {
  const { config } = d;
  const bodyTimeoutMs = config.limits.bodyTimeoutMs;
  const lockdown = lockdownGuard(config.stateDir);
  const anonymousLines = new LineSampler(config.limits.anonymousLogLinesPerMinute, d.clock);
  const hostOk = hostAllowlist(config.host, config.allowedHosts);
  const cors = corsGuard(config.corsOrigins);
  // Limits, concurrency slots, nonces and revocations: this process's memory, or Redis shared by every instance.
  const shared = createSharedState(config, d.log, d.clock);
  const { limiter, authFailures, nonces, revocations } = shared;
  let publishedKeys = -1; // the keys-file generation whose revocations went to Redis
  let publishedLost = 0; // and after how many losses of the shared list (store/revocations.ts `lost`)
  const startedMs = d.clock(); // signed requests from before this moment may have been accepted by an earlier process
  const signatureFloor = new SignatureFloor(config.stateDir, startedMs, (msg) => d.log.warn(msg)); // and, per key, those up to its floor
  const promptCheck = createPromptGuard(config);
  const scanner = config.responseScan.action === "off" ? undefined : createScanner(config.responseScan);
  const keyLimits = (k: KeyRecord) => ({
    rpm: k.rpm ?? config.rateLimit.rpm, tpm: k.tpm ?? config.rateLimit.tpm,
    burst: config.rateLimit.burst, maxConcurrent: k.maxConcurrent ?? config.rateLimit.maxConcurrent,
  });
  const failLimits = { rpm: config.rateLimit.authFailuresPerMinute, tpm: 0, burst: 1, maxConcurrent: 0 };
  /** A whole network may fail authFailureNetworkFactor times as often as one address (several users behind it). */
  const failNetLimits = { ...failLimits, rpm: failLimits.rpm * config.rateLimit.authFailureNetworkFactor };

  const anonLimits = { ...failLimits, rpm: config.rateLimit.anonymousRpm };
  /**
   * anonymousRpm per client address for requests without a key: the public docs with auth on, everything with it
   * off. The docs need no shared state (README: Redis "refuse" spares them), so a limiter that cannot answer lets
   * them through.
   */
  const anonymous = async (state: RequestState, docs: boolean) => {
    try {
      Object.assign(state.headers, (await limiter.admit(`ip:${state.clientIp}`, anonLimits)).headers);
    } catch (e) {
      if (!(docs && e instanceof SharedStateUnavailableError)) throw e;
    }
  };

  /**
   * GET /metrics and /ready, the operator's view of an outage: under `redisUnavailable = "refuse"` they were refused
   * too, so `appliance_shared_state_redis_up 0` could never be read when it mattered (scale-out run). A valid key
   * reads them on this instance's last copy of the revocations, not charged to its shared rate limit.
   */
  const observing = (method: string, path: string) => method === "GET" && (path === "/metrics" || path === "/ready");
  const spared = async <T>(observe: boolean, call: () => Promise<T>, fallback: T): Promise<T> => {
    try { return await call(); } catch (e) { if (observe && e instanceof SharedStateUnavailableError) return fallback; throw e; }
  };

  /** The failed-auth counters of a client: its address, and its network (rotating addresses share a /24, /64 or loopback). */
  const failCounters = (ip: string) => [{ id: `fail:${ip}`, l: failLimits }, { id: `failnet:${networkOf(ip)}`, l: failNetLimits }];
  const throttled = (state: RequestState, retryAfter: number) => {
    state.decisions.push("auth:throttled");
    return new RateLimitError("Too many failed authentication attempts from this address.", retryAfter, {});
  };
  /** Frees the slot a signing key's request held until its signature was checked. */
  const releaseUnsigned = (x: Extra) => {
    if (x.unsigned && x.key) limiter.settle(x.unsigned.id, keyLimits(x.key), 0, 0, x.unsigned.slot, undefined);
    x.unsigned = undefined;
  };
  /**
   * Whose signatures a nonce belongs to: the public key's, not the key record's, so a signature sent with one key is
   * refused as a replay with another key registered with the same public key (the signed text names no key).
   */
  const signer = (key: KeyRecord) => `pk:${key.signingKey}`;
  /** Charges one failed authentication (a bad key, or a bad signature) to the client; throws 429 once over the limit. */
  const countFailure = async (state: RequestState) => {
    for (const f of failCounters(state.clientIp)) {
      try { await authFailures.admit(f.id, f.l); } catch (e) { throw throttled(state, Number((e as AppError).headers["retry-after"] ?? 60)); }
    }
  };

  return {
    async onRequest(request, state) {
      const url = { pathname: state.path };
      // host (no Host at all, as HTTP/1.0 allows, is refused like any unknown name)
      if (!hostOk(state.host)) throw new HostError(state.host);
      lockdown(url.pathname); // before auth: in lockdown no key reaches the API
      // CORS: no headers at all unless the origin is configured, so browsers are denied.
      const c = cors(request.method, request.headers);
      if (c?.preflight) return new Response(null, { status: 204, headers: { ...state.headers, ...c.headers, "x-request-id": state.id } });
      if (c) Object.assign(state.headers, c.headers);
      // body size (declared), before a byte of it is read; readBody counts the bytes actually sent
      if (declaredLength(request) > config.maxBodyBytes) throw new BodyTooLargeError(config.maxBodyBytes);
      // auth
      const open = isPublic(request.method, url.pathname, config.docsPublic);
      if (!config.auth || open) {
        // GET /health is left out: it is the liveness probe of the service manager, `update`'s rollback check and
        // load balancers, which a busy neighbour behind the same address must never make fail.
        if (!isPublic(request.method, url.pathname)) await anonymous(state, open);
        return undefined;
      }
      const presented = presentedKey(request.headers);
      let rec = presented && d.keys ? d.keys.verify(presented) : undefined;
      if (revocations && d.keys) {
        // This instance's own revocations go to Redis (whoever ran `keys revoke` without the Redis settings),
        // and every instance's come back: a key revoked anywhere is refused here within REVOCATION_MAX_AGE_MS.
        if (d.keys.generation !== publishedKeys || revocations.lost !== publishedLost) {
          publishedKeys = d.keys.generation;
          publishedLost = revocations.lost;
          revocations.publish(d.keys.list().filter((k) => k.revoked).map((k) => k.id)).catch(() => { publishedKeys = -1; });
        }
        // During an outage under "refuse", /metrics and /ready read the last copy (a key revoked on another instance
        // before Redis went stays refused: the fallback was "not revoked", attack on the fix).
        if (rec && await spared(observing(request.method, url.pathname), () => revocations.isRevoked(rec!.id), revocations.lastKnown(rec.id))) rec = undefined;
      }
      // Failed-auth throttle, per address and per network (rotating source addresses share a /24, /64 or
      // loopback): a source over it gets 429 for every attempt that is not a complete credential. A valid key is
      // never refused by it: it was checked before the key, so on the default loopback bind (one network) any local
      // process sending ~50 bad keys a minute locked out every client, the metrics scraper too (operations run).
      // A signing key's bearer key alone is not a complete credential: from a throttled source it is refused here,
      // before its body is read and its signature checked (else a captured bearer key could make the server read,
      // hash, verify and audit a 1 MiB body per attempt without end). Keys are 256 random bits and signatures
      // Ed25519: the throttle bounds the cost and noise of failures, not what could be guessed.
      // Both at once: with Redis that is one round trip for the two, not two.
      const throttle = async () => {
        const waits = await Promise.all(failCounters(state.clientIp).map((f) => authFailures.exhausted(f.id, f.l)));
        for (const wait of waits) if (wait !== undefined) throw throttled(state, wait);
      };
      if (rec?.requireSignature) await throttle();
      if (!rec) {
        await throttle();
        await countFailure(state);
        state.decisions.push(presented ? "auth:invalid" : "auth:missing");
        throw new AuthError();
      }
      state.keyName = rec.name;
      state.keyId = rec.id;
      state.scopes = rec.scopes;
      extra(state).key = rec;
      checkScope(rec, url.pathname);
      if (request.method === "POST") { // generations: the slot is held from now, while the body is still arriving
        // A signing key's slot only once its signature is checked: a body still arriving (or never sent) holds one of
        // its address network's, or whoever captured the bearer key alone could hold every slot of the key and lock
        // its owner out (4 bodies never sent, one failed signature per 30 s body deadline, under the throttle).
        if (rec.requireSignature) {
          const id = `unsigned:${rec.id}:${networkOf(state.clientIp)}`;
          extra(state).unsigned = { id, slot: await limiter.enter(id, keyLimits(rec)) };
        } else extra(state).slot = await limiter.enter(`key:${rec.id}`, keyLimits(rec));
      }
      return undefined;
    },

    async readBody(request, state) {
      checkEncoding(request);
      // Counted as it arrives and cut off past maxBodyBytes, within the body deadline.
      let buf: Uint8Array;
      try {
        buf = await withDeadline(readBodyBytes(request, config.maxBodyBytes), bodyTimeoutMs, () => new BodyTimeoutError(bodyTimeoutMs));
      } catch (e) {
        // The client went away before its body was complete (Bun rejects the read with an AbortError): a client abort
        // like an aborted stream (499, nothing sent), not the 400 invalid_json Elysia's parse error would make of it.
        if (!(e instanceof AppError) && ((e as Error)?.name === "AbortError" || request.signal.aborted)) {
          throw new CancelledError("the client closed the connection before its request body was complete");
        }
        throw e;
      }
      const raw = new TextDecoder().decode(buf);
      extra(state).rawBody = raw;
      return raw;
    },

    async afterParse(request, state, body) {
      const x = extra(state);
      const key = x.key;
      if (!key) return;
      x.limitChecked = true; // whatever happens now (a bad signature, a 429), refused() must not count it again
      let signed: { nonce: string; expiresAt: number; ts: number } | undefined;
      if (key.requireSignature) {
        try {
          signed = verifySignature({ publicKey: key.signingKey, method: request.method, path: state.path + state.query, body: x.rawBody ?? "",
            headers: request.headers, nowMs: d.clock(), startedMs, floorS: signatureFloor.floorFor(signer(key)) });
          await nonces.check(signer(key), signed.nonce, d.clock()); // replay or full cache: refused before it costs the key anything
        } catch (e) {
          // A missing, wrong or replayed signature is a failed authentication: whoever sends it holds the bearer key
          // but not the signing key (a captured key is what signing defends against). It counts against the address's
          // failed-auth throttle like a wrong key, not against the key's limits, which would let that holder lock
          // the key's owner out.
          if (e instanceof SignatureError) { state.decisions.push("signature:invalid"); await countFailure(state); }
          throw e;
        }
        state.decisions.push("signature:ok");
        if (x.unsigned) {
          releaseUnsigned(x);
          x.slot = await limiter.enter(`key:${key.id}`, keyLimits(key));
        }
      }
      x.reserved = request.method === "POST" ? tokenReservation(body, x.rawBody ?? "", state.path, config) : 0;
      const admitted = await spared(observing(request.method, state.path), () => limiter.admit(`key:${key.id}`, keyLimits(key), x.reserved), { where: undefined as Where | undefined, headers: {} as Record<string, string> });
      x.admitted = admitted.where;
      Object.assign(state.headers, admitted.headers);
      // Remembered only once the rate limiter charged it: a flood of refused requests cannot fill the cache.
      if (signed) {
        await nonces.add(signer(key), signed.nonce, signed.expiresAt, d.clock());
        signatureFloor.accepted(signer(key), signed.ts, d.clock());
      }
    },

    async refused(request, state, error) {
      const x = extra(state);
      // 429s are the limiter's (or the failed-auth throttle's) own answer: counting them again would double-charge.
      if (!x.key || x.limitChecked || error.status === 429) return error;
      try {
        await this.afterParse(request, state, undefined); // the body was never parsed: the reservation is its raw length
      } catch (e) {
        if (e instanceof AppError) return e;
        throw e;
      }
      return error;
    },

    prompt(state, model, turns, messages, param) {
      checkBounds(turns, config, messages, param);
      let v;
      try {
        v = promptCheck(turns, d.engine.specialTokens(model));
      } catch (e) {
        if (e instanceof AppError && e.code === "prompt_rejected") state.decisions.push(`prompt:block:${e.param}`);
        throw e;
      }
      for (const f of v.flags) state.decisions.push(`prompt:flag:${f}`);
      for (const f of v.stripped) state.decisions.push(`prompt:strip:${f}`);
      if (v.flags.length) state.headers["x-appliance-prompt-flags"] = v.flags.join(",");
      // A prompt that ends inside a private key (a model asked to continue a key it was handed the start of, leak run):
      // the answer starts inside that key, so its body is dropped as a key's body after BEGIN is. Only where the
      // answer continues the text: the last user or assistant message, or any completions prompt (fix-attack run: a
      // system prompt or an earlier message quoting a BEGIN line blanked every answer).
      const last = messages === undefined ? turns : turns.slice(0, messages).filter((t) => t.role === "user" || t.role === "assistant").slice(-1);
      if (scanner && last.some((t) => scanner.opensKey(t.content))) extra(state).keyOpen = true;
      return v.turns;
    },

    responseFilter(state, answer = false, json = false) {
      const f = scanner ? scanner.filter(answer && extra(state).keyOpen ? "private-key" : undefined, json) : passthrough();
      (extra(state).filters ??= []).push(f); // a stream of n choices filters each on its own
      return f;
    },

    settle(state) {
      const x = extra(state);
      if (x.settled) return;
      x.settled = true;
      releaseUnsigned(x);
      // Only what admit() took is settled: a refused request's reservation was never taken, so refunding it would mint tokens.
      if (x.key) limiter.settle(`key:${x.key.id}`, keyLimits(x.key), (state.promptTokens ?? 0) + (state.completionTokens ?? 0), x.admitted ? x.reserved ?? 0 : 0, x.slot, x.admitted);
    },

    onFinish(state) {
      const x = extra(state);
      this.settle(state);
      const findings = new Set(x.filters?.flatMap((f) => f.findings));
      state.decisions.push(...[...findings].map((f) => `response:${config.responseScan.action}:${f}`));
      if (config.auth && !state.keyName) {
        const skipped = anonymousLines.take();
        if (skipped === undefined) return false;
        if (skipped) state.decisions.push(`log:skipped:${skipped}`);
      }
      return true;
    },

    record(summary) {
      try {
        d.audit?.append({ ts: new Date(d.clock()).toISOString(), ...summary });
      } catch (e) {
        d.log.error({ err: (e as Error).message, reqId: summary.reqId, traceId: summary.traceId }, "audit write failed"); // the response is already out
      }
    },

    sharedState: () => shared.status(),
    close: () => shared.close(),
    prepare: () => scanner?.prepare(),
  };
}
