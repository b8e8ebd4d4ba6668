/** The Redis settings are checked before anything connects: a config error names its field (exit 2), never a 500 later. */
import { expect, test } from "bun:test";
import path from "node:path";
import { ConfigError, parseConfig, redactConfig } from "../../src/config/load";
import { withPassword } from "../../src/guards/store/redis-conn";
import { redisPassword } from "../../src/guards/store/shared-state";
import { tmpDir } from "../helpers";

test("store redis without redisUrl is a config error naming rateLimit.redisUrl; memory needs nothing", () => {
  expect(() => parseConfig({ rateLimit: { store: "redis" } })).toThrow(ConfigError);
  try { parseConfig({ rateLimit: { store: "redis" } }); } catch (e) { expect((e as ConfigError).field).toBe("rateLimit.redisUrl"); }
  expect(parseConfig({}).rateLimit).toMatchObject({ store: "memory", redisUnavailable: "local" });
});

test("the password comes from a file or a variable, never both; a missing one is a config error", () => {
  const rl = parseConfig({ rateLimit: { store: "redis", redisUrl: "redis://127.0.0.1:1" } }).rateLimit;
  const missing = path.join(tmpDir("appliance-redis-cfg-"), "nope");
  expect(() => redisPassword({ ...rl, redisPasswordFile: missing })).toThrow(/redisPasswordFile/);
  expect(() => redisPassword({ ...rl, redisPasswordEnv: "NO_SUCH_VAR_X" }, {})).toThrow(/NO_SUCH_VAR_X/);
  expect(() => redisPassword({ ...rl, redisPasswordEnv: "P", redisPasswordFile: missing }, { P: "x" })).toThrow(ConfigError);
  expect(redisPassword({ ...rl, redisPasswordEnv: "P" }, { P: "pw" })).toBe("pw");
});

test("the password goes into the URL's user part, escaped; unix sockets get the host Bun needs", () => {
  expect(withPassword("redis+unix:///run/r.sock", "a@b/c:d")).toBe("redis+unix://:a%40b%2Fc%3Ad@localhost/run/r.sock");
  expect(withPassword("redis://h:6379/0", "p")).toBe("redis://:p@h:6379/0");
  expect(withPassword("rediss://user:old@h", "p")).toBe("rediss://user:p@h");
});

test("config print masks a password inside redisUrl (and keys inside list entries)", () => {
  const c = parseConfig({ rateLimit: { store: "redis", redisUrl: "redis://user:s3cret@10.0.0.20:6379/0" } });
  expect((redactConfig(c).rateLimit as { redisUrl: string }).redisUrl).toBe("redis://user:[redacted]@10.0.0.20:6379/0");
  expect(JSON.stringify(redactConfig(c))).not.toContain("s3cret");
  const plain = parseConfig({ rateLimit: { store: "redis", redisUrl: "redis+unix:///run/redis.sock" } });
  expect((redactConfig(plain).rateLimit as { redisUrl: string }).redisUrl).toBe("redis+unix:///run/redis.sock");
  const up = parseConfig({ upstreams: [{ url: "http://10.0.0.5:8000/v1", apiKey: "sk-upstream-s3cret", models: ["m"] }] });
  expect(JSON.stringify(redactConfig(up))).not.toContain("s3cret");
});
