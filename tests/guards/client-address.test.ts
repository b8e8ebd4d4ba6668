/**
 * trustedProxies (scale-out run): behind a load balancer every client was the balancer's one address, so one client's
 * bad keys throttled every other client's bad keys and the anonymous limit was shared by all. From a trusted proxy the
 * client is the nearest X-Forwarded-For address that is not a proxy of ours; from anyone else the header is ignored.
 */
import { expect, test } from "bun:test";
import fs from "node:fs";
import { clientAddressFor } from "../../src/guards/client-address";
import { loadConfig } from "../../src/config/load";
import { listenApp, makeApp, until } from "../helpers";

test("the client address: the peer unless it is trusted; then the rightmost forwarded address that is not a proxy of ours", () => {
  const none = clientAddressFor([]);
  expect(none("10.0.0.2", "198.51.100.7")).toBe("10.0.0.2");
  const at = clientAddressFor(["10.0.0.0/8", "fd00::/8", "192.0.2.1"]);
  expect(at("203.0.113.5", "198.51.100.7")).toBe("203.0.113.5"); // not a proxy of ours: its header is the client's own words
  expect(at("10.0.0.2", null)).toBe("10.0.0.2");
  expect(at("10.0.0.2", "198.51.100.7")).toBe("198.51.100.7");
  expect(at("10.0.0.2", "6.6.6.6, 198.51.100.7, 192.0.2.1")).toBe("198.51.100.7"); // what the client wrote left of it is not read
  expect(at("fd12::1", "2001:db8::7")).toBe("2001:db8::7");
  expect(at("10.0.0.2", "198.51.100.7, unknown")).toBe("10.0.0.2"); // garbage: nothing beyond it is trusted
  expect(at("10.0.0.2", "10.1.1.1, 10.2.2.2")).toBe("10.1.1.1");
  expect(() => loadConfig({ env: {}, flags: { trustedProxies: ["10.0.0.0/33"] } })).toThrow(/trustedProxies/);
  expect(() => loadConfig({ env: {}, flags: { trustedProxies: ["lb.example"] } })).toThrow(/trustedProxies/);
  // Fix-attack run 2: an IPv6-mapped IPv4 range was read as ::/8 (every IPv4 peer trusted); ports hid the client.
  expect(() => loadConfig({ env: {}, flags: { trustedProxies: ["::ffff:10.0.0.0/8"] } })).toThrow(/trustedProxies/);
  expect(at("10.0.0.2", "198.51.100.7:5678")).toBe("198.51.100.7");
  expect(at("10.0.0.2", "[2001:db8::1]:443")).toBe("2001:db8::1");
  expect(at("10.0.0.2", "[2001:db8::1]")).toBe("2001:db8::1");
});

test("through the app: each forwarded client has its own failed-auth count and its own audit address; untrusted, the header is ignored", async () => {
  const run = async (trustedProxies: string[]) => {
    const ctx = await makeApp({ config: { trustedProxies, rateLimit: { authFailuresPerMinute: 2, authFailureNetworkFactor: 1 } } });
    const base = listenApp(ctx.app);
    const bad = async (client: string) => (await fetch(`${base}/v1/models`, { headers: { authorization: "Bearer apk_nope", "x-forwarded-for": client } })).status;
    try {
      const statuses = [await bad("198.51.100.7"), await bad("198.51.100.7"), await bad("198.51.100.7"), await bad("203.0.113.9")];
      const audit = await until(() => {
        const lines = fs.existsSync(ctx.auditFile) ? fs.readFileSync(ctx.auditFile, "utf8").trim().split("\n").filter(Boolean) : [];
        return lines.length >= 4 ? lines.map((l) => JSON.parse(l).client as string) : undefined;
      }, 20_000, "the audit records");
      return { statuses, clients: [...new Set(audit)].sort() };
    } finally { ctx.app.server?.stop(true); await ctx.engine.dispose(); }
  };
  expect(await run(["127.0.0.1", "::1", "::ffff:127.0.0.1"])).toEqual({ statuses: [401, 401, 429, 401], clients: ["198.51.100.7", "203.0.113.9"] });
  const untrusted = await run([]);
  expect(untrusted.statuses).toEqual([401, 401, 429, 429]); // all one client: the loopback peer
  expect(untrusted.clients.every((c) => c.includes("127.0.0.1") || c === "::1")).toBe(true);
});
