/**
 * A key created with a signing requirement, sent with a missing or wrong signature, got 401 every time and was never
 * throttled: whoever holds a captured bearer key (the one thing signing defends against) could try signatures
 * without limit, each try one more audit record. A bad signature now counts against the failed-auth throttle of its
 * address and network, like a bad key: past the limit, 429, and the source stays refused (even with a good signature)
 * until the minute is over. The key's own limits are not charged: a stolen bearer key cannot exhaust its owner's.
 */
import { afterAll, expect, test } from "bun:test";
import crypto from "node:crypto";
import { sign } from "../../src/guards/signature";
import { listenApp, makeApp, makeEngine } from "../helpers";

const engine = await makeEngine();
afterAll(() => engine.dispose());

test("over real HTTP: missing and wrong signatures are throttled per address (429), then a good one passes once the minute is over", async () => {
  let now = Date.parse("2030-01-01T00:00:00Z");
  const { privateKey, publicKey } = crypto.generateKeyPairSync("ed25519");
  const ctx = await makeApp({
    engine, clock: () => now, config: { rateLimit: { authFailuresPerMinute: 3, rpm: 2 } },
    keys: [{ name: "signed", scopes: ["models"], requireSignature: true, publicKey: publicKey.export({ format: "pem", type: "spki" }).toString() }],
  });
  const base = listenApp(ctx.app);
  try {
    const ts = () => String(Math.floor(now / 1000));
    const good = () => ({ "x-appliance-timestamp": ts(), "x-appliance-signature": sign(privateKey, "GET", "/v1/models", ts(), "") });
    const wrong = () => ({ "x-appliance-timestamp": ts(), "x-appliance-signature": sign(crypto.generateKeyPairSync("ed25519").privateKey, "GET", "/v1/models", ts(), "") });
    const send = async (headers: Record<string, string>) => {
      const r = await fetch(`${base}/v1/models`, { headers: { authorization: `Bearer ${ctx.key}`, ...headers } });
      return { status: r.status, code: ((await r.json()) as { error?: { code: string } }).error?.code };
    };
    const tries = [await send({}), await send(wrong()), await send(wrong()), await send(wrong()), await send({})];
    expect(tries).toEqual([
      { status: 401, code: "invalid_signature" }, { status: 401, code: "invalid_signature" }, { status: 401, code: "invalid_signature" },
      { status: 429, code: "rate_limit_exceeded" }, { status: 429, code: "rate_limit_exceeded" },
    ]);
    expect(await send(good())).toEqual({ status: 429, code: "rate_limit_exceeded" }); // the source is throttled, as after bad keys
    now += 61_000;
    // The failures never charged the key (rpm 2): its owner's next requests pass.
    const first = await send(good());
    now += 1000; // a new timestamp: the same message twice is a replay
    expect([first.status, (await send(good())).status]).toEqual([200, 200]);
  } finally {
    ctx.app.server?.stop(true);
  }
});
