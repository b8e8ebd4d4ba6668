/**
 * Issue 12: two instances (compiled binaries, separate state dirs) sharing one real redis-server
 * enforce ONE budget per key: requests/min, concurrent generations, tokens/min, signature nonces and
 * key revocations. Each assertion here fails with rateLimit.store "memory" (each instance then has
 * its own budget), which is how it was checked.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { sign } from "../../src/guards/signature";
import { tmpDir, until } from "../helpers";
import { startPair, type Pair } from "./redis-instances";
import { redisMissing, startRedis, type RedisServer } from "./redis-server";

const skip = redisMissing("tests/guards/redis-shared.test.ts");
const RPM = 4;
const LEASE_MS = 3000;
const signer = crypto.generateKeyPairSync("ed25519");

let redis: RedisServer;
let pair: Pair;

beforeAll(async () => {
  if (skip) return;
  redis = await startRedis();
  const pub = path.join(tmpDir("appliance-redis-pub-"), "signer.pub");
  fs.writeFileSync(pub, signer.publicKey.export({ format: "pem", type: "spki" }));
  pair = await startPair(redis.url, {
    rpm: ["--rpm", String(RPM)],
    conc: ["--max-concurrent", "1", "--rpm", "0", "--tpm", "0"],
    tok: ["--tpm", "60", "--rpm", "0"],
    rev: [],
    sig: ["--require-signature", "--public-key", pub],
  }, { APPLIANCE_RATE_LIMIT__CONCURRENCY_LEASE_MS: String(LEASE_MS) });
}, 120_000);

afterAll(async () => {
  if (skip) return;
  await pair?.stop();
  await redis?.kill();
});

const get = (base: string, key: string, headers: Record<string, string> = {}) =>
  fetch(`${base}/v1/models`, { headers: { authorization: `Bearer ${key}`, ...headers } });
const chat = (base: string, key: string, body: unknown) => fetch(`${base}/v1/chat/completions`, {
  method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" }, body: JSON.stringify(body),
});

/** A POST to A whose body never finishes arriving: it holds one of the key's concurrency slots until the socket closes. */
async function holdSlot(base: string, key: string) {
  const url = new URL(base);
  let answer = "";
  const socket = await Bun.connect({ hostname: url.hostname, port: Number(url.port),
    socket: { data(_s, d) { answer += d.toString(); }, error() {} } });
  socket.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${key}\r\n` +
    "Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"model\":");
  return { socket, answer: () => answer };
}

/**
 * Holds a slot on A and waits until B refuses the key. A slot is released in the background after its
 * response is out (one Redis round trip), so A may still see B's last probe holding the only slot and
 * answer 429 at once; then the hold is simply opened again.
 */
async function holdOnA() {
  return until(async () => {
    const hold = await holdSlot(pair.a.baseURL, pair.keys.conc!);
    const status = await until(async () => hold.answer() ? -1 : await probeB(429), 20_000, "B to see A's slot");
    if (status === 429) return hold;
    hold.socket.end();
    return undefined;
  }, 30_000, "a slot held on A");
}

/** B's answer to a key that is not holding a slot there: 400 (empty body) when a slot was free, 429 when none was. */
const probeB = async (want: number) => {
  const r = await chat(pair.b.baseURL, pair.keys.conc!, {});
  await r.arrayBuffer();
  return r.status === want ? r.status : undefined;
};

describe.skipIf(skip)("two instances, one Redis", () => {
  test(`requests per minute: ${RPM} across both instances, alternating; exactly ${RPM} succeed and the rest get 429`, async () => {
    const statuses: number[] = [];
    for (let i = 0; i < RPM * 2 + 2; i++) {
      const r = await get(i % 2 ? pair.b.baseURL : pair.a.baseURL, pair.keys.rpm!);
      statuses.push(r.status);
      const body = await r.json() as { error?: { code: string; type: string } };
      if (r.status === 429) {
        expect(body.error).toMatchObject({ code: "rate_limit_exceeded", type: "rate_limit_error" });
        expect(Number(r.headers.get("retry-after"))).toBeGreaterThan(0);
        expect(r.headers.get("x-ratelimit-remaining-requests")).toBe("0");
      }
    }
    expect(statuses.filter((s) => s === 200)).toHaveLength(RPM);
    expect(statuses.filter((s) => s === 429)).toHaveLength(RPM + 2);
    expect(statuses.slice(0, RPM)).toEqual(Array(RPM).fill(200)); // both instances served their share first
  });

  test("a concurrency slot held on A is counted on B, and freed there when A's request ends", async () => {
    expect(await probeB(400)).toBe(400);
    const { socket } = await holdOnA(); // B refuses the key while A holds its one slot
    socket.end(); // A's request ends (client gone): its slot is released in Redis
    expect(await until(() => probeB(400), 20_000, "B to see the slot free again")).toBe(400);
  });

  test("token budget: what A's generation used is gone on B; a reservation larger than what is left is refused there", async () => {
    const r = await chat(pair.a.baseURL, pair.keys.tok!, { model: "tiny", messages: [{ role: "user", content: "hello there" }], max_tokens: 24, seed: 1 });
    expect(r.status).toBe(200);
    const used = ((await r.json()) as { usage: { total_tokens: number } }).usage.total_tokens;
    const answeredAt = Date.now();
    expect(used).toBeGreaterThan(15);
    // A settles (charges what was used beyond its reservation) in the background just after its response, so B
    // may see the reservation for a moment; polled. 60 tokens/min refill one per second, so a per-instance
    // budget (B full at 60) could only meet the bound after `used` seconds, far past this deadline.
    const left = await until(async () => {
      const b = await get(pair.b.baseURL, pair.keys.tok!);
      expect(b.status).toBe(200);
      const n = Number(b.headers.get("x-ratelimit-remaining-tokens"));
      return n <= 60 - used + Math.ceil((Date.now() - answeredAt) / 1000) + 1 ? n : undefined;
    }, 10_000, "B to see A's token use");
    expect(left).toBeLessThan(60);
    console.log(`token budget: A used ${used}; B saw ${left} left`);
    const big = await chat(pair.b.baseURL, pair.keys.tok!, { model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 56 });
    expect(big.status).toBe(429);
    expect(((await big.json()) as { error: { message: string } }).error.message).toContain("tokens per minute");
  });

  test("a signed request accepted by A is a replay on B", async () => {
    const ts = String(Math.ceil(Date.now() / 1000)); // not before either process started
    const headers = { "x-appliance-timestamp": ts, "x-appliance-signature": sign(signer.privateKey, "GET", "/v1/models", ts, "") };
    const first = await get(pair.a.baseURL, pair.keys.sig!, headers);
    expect(first.status).toBe(200);
    const replay = await get(pair.b.baseURL, pair.keys.sig!, headers);
    expect(replay.status).toBe(401);
    expect(((await replay.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: "invalid_signature", message: "Replayed request signature." });
  });

  test("a key revoked on A (keys revoke) is refused by B within a second, though B's own keys file still lists it active", async () => {
    expect((await get(pair.b.baseURL, pair.keys.rev!)).status).toBe(200);
    const r = pair.cli(["keys", "revoke", "rev"]);
    expect(r.code).toBe(0);
    expect(r.err).toContain("shared through Redis");
    const revokedAt = Date.now();
    expect((await get(pair.a.baseURL, pair.keys.rev!)).status).toBe(401);
    const seen: { sentAt: number; status: number }[] = [];
    await until(async () => {
      const sentAt = Date.now();
      const res = await get(pair.b.baseURL, pair.keys.rev!);
      seen.push({ sentAt, status: res.status });
      return res.status === 401 ? true : undefined;
    }, 20_000, "B to refuse the revoked key");
    // Nothing sent to B a second or more after the revocation was let through.
    expect(seen.filter((s) => s.status === 200 && s.sentAt - revokedAt >= 1000)).toEqual([]);
    const bFile = JSON.parse(fs.readFileSync(path.join(pair.stateB, "keys.json"), "utf8")) as { keys: { name: string; revoked: string | null }[] };
    expect(bFile.keys.find((k) => k.name === "rev")!.revoked).toBeNull();
    console.log(`revocation seen by B ${seen.find((s) => s.status === 401)!.sentAt - revokedAt} ms after keys revoke returned`);
  });

  test(`an instance that dies holding a slot does not leak it: B gets it back within the lease (${LEASE_MS} ms)`, async () => {
    const hold = await holdOnA();
    pair.a.proc.kill("SIGKILL");
    await pair.a.proc.exited;
    expect(await until(() => probeB(400), 30_000, "the dead instance's slot to expire")).toBe(400);
    hold.socket.end();
  });
});
