/** One schema: defaults < file < env < flags; errors name the field and exit 2. */
import { describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { ConfigError, DEFAULTS, FILE_ONLY, envLayer, loadConfig, parseConfig, redactConfig } from "../src/config/load";
import { configFlagOptions, parseWithConfig } from "../src/cli/command";
import { main } from "../src/main";
import { tmpDir } from "./helpers";

describe("config", () => {
  test("safe defaults", () => {
    expect(DEFAULTS.host).toBe("127.0.0.1");
    expect(DEFAULTS.port).toBe(8000);
    expect(DEFAULTS.auth).toBe(true);
    expect(DEFAULTS.allowUnverified).toBe(false);
    expect(DEFAULTS.logPrompts).toBe(false);
    expect(DEFAULTS.corsOrigins).toEqual([]);
  });
  test("file < env < flags", () => {
    const file = path.join(tmpDir(), "c.json");
    fs.writeFileSync(file, JSON.stringify({ port: 1111, threads: 3, rateLimit: { rpm: 5 } }));
    const env = { APPLIANCE_PORT: "2222", APPLIANCE_RATE_LIMIT__TPM: "77", APPLIANCE_MODEL: "a.gguf,b.gguf" };
    const c = loadConfig({ file, env, flags: { threads: 4 } });
    expect(c.port).toBe(2222);
    expect(c.threads).toBe(4);
    expect(c.rateLimit).toMatchObject({ rpm: 5, tpm: 77 });
    expect(c.model).toEqual(["a.gguf", "b.gguf"]);
    expect(Object.isFrozen(c)).toBe(true);
  });
  test("TOML files work too", () => {
    const file = path.join(tmpDir(), "c.toml");
    fs.writeFileSync(file, "port = 3333\n[responseScan]\npii = true\n");
    const c = loadConfig({ file, env: {} });
    expect(c.port).toBe(3333);
    expect(c.responseScan.pii).toBe(true);
  });
  test("errors name the field", () => {
    expect(() => loadConfig({ env: { APPLIANCE_PORT: "http" } })).toThrow(/port/);
    expect(() => loadConfig({ env: {}, flags: { parallel: 0 } })).toThrow(/parallel/);
    expect(() => loadConfig({ env: { APPLIANCE_RATE_LIMIT__RPM: "-1" } })).toThrow(/rateLimit\.rpm/);
    const file = path.join(tmpDir(), "bad.json");
    fs.writeFileSync(file, JSON.stringify({ prot: 1 }));
    expect(() => loadConfig({ file, env: {} })).toThrow(ConfigError);
    expect(envLayer({ APPLIANCE_LOG_PROMPTS: "true" })).toEqual({ logPrompts: true });
  });
  test("only schema-derived APPLIANCE_* names are settings; control variables are skipped, unknown ones warned about", () => {
    const warned: string[] = [];
    const layer = envLayer({ APPLIANCE_KEY: "sk-x", APPLIANCE_SERVICE: "1", APPLIANCE_DEBUG: "1", APPLIANCE_CONFIG: "/x.json",
      APPLIANCE_PROT: "1", APPLIANCE_RATE_LIMIT__NOPE: "1", APPLIANCE_MAX_QUEUE: "3", APPLIANCE_PROMPT_GUARD__INVISIBLE_UNICODE: "flag" }, (n) => warned.push(n));
    expect(layer).toEqual({ maxQueue: 3, promptGuard: { invisibleUnicode: "flag" } });
    expect(warned.sort()).toEqual(["APPLIANCE_PROT", "APPLIANCE_RATE_LIMIT__NOPE"]);
    expect(loadConfig({ env: { APPLIANCE_KEY: "sk-x", APPLIANCE_SERVICE: "1", APPLIANCE_BOGUS: "1" } }).port).toBe(8000);
  });
  test("CLI: invalid config exits 2; validate and print work; secrets are redacted", async () => {
    expect(await main(["serve", "--ctx-size", "zero"])).toBe(2);
    expect(await main(["serve", "--bogus"])).toBe(2);
    const good = path.join(tmpDir(), "good.json");
    fs.writeFileSync(good, JSON.stringify({ port: 9000 }));
    expect(await main(["config", "validate", good])).toBe(0);
    fs.writeFileSync(good, JSON.stringify({ port: "x" }));
    expect(await main(["config", "validate", good])).toBe(2);
    // What serve refuses beyond the schema, validate refuses too (scale-out run: each of these was "valid", then serve exited 2).
    const dir = path.dirname(good);
    const up = (u: object) => ({ upstreams: [{ url: "http://127.0.0.1:9/v1", models: ["m"], ...u }] });
    for (const bad of [up({ apiKeyFile: path.join(dir, "missing") }), { ...up({}), model: [path.join(dir, "m.gguf")] },
      { rateLimit: { store: "redis", redisUrl: "http://127.0.0.1:6379" } },
      { rateLimit: { store: "redis", redisUrl: "redis://127.0.0.1:6379", redisPasswordFile: path.join(dir, "missing") } },
      // Fix-attack run 2: these too were "valid", then serve exited 2.
      { host: "0.0.0.0" }, { tlsClientCa: path.join(dir, "ca.pem") }, { tlsKey: path.join(dir, "k.pem") },
      { upstreams: [{ url: "http://u:p@127.0.0.1:9/v1", models: ["m"] }] },
      { upstreams: [{ url: "http://127.0.0.1:9/v1", models: ["m"] }, { url: "http://127.0.0.1:9/v1/", models: ["m"] }] },
      { model: [fs.mkdtempSync(path.join(dir, "empty-"))] },
      { rateLimit: { store: "redis", redisUrl: "redis://127.0.0.1:6379", redisPasswordFile: path.join(dir, "x"), redisPasswordEnv: "APPLIANCE_TEST_SURELY_UNSET" } }]) {
      fs.writeFileSync(good, JSON.stringify(bad));
      expect([bad, await main(["config", "validate", good])]).toEqual([bad, 2]);
    }
    // A key variable is the service's environment's to settle: noted, not refused.
    fs.writeFileSync(good, JSON.stringify(up({ apiKeyEnv: "APPLIANCE_TEST_SURELY_UNSET" })));
    expect(await main(["config", "validate", good])).toBe(0);
    expect(redactConfig({ ...DEFAULTS, apiSecret: "s3cret" } as never)).toMatchObject({ apiSecret: "[redacted]" });
    expect(await main(["nope"])).toBe(2);
  });
  test("a list flag is comma-separated like its variable, and may repeat", () => {
    const origins = (argv: string[]) => parseWithConfig(argv).config.corsOrigins;
    expect(origins(["--cors-origins", "http://a,http://b"])).toEqual(["http://a", "http://b"]);
    expect(origins(["--cors-origins", "http://a", "--cors-origins", "http://b, http://c"])).toEqual(["http://a", "http://b", "http://c"]);
    expect(loadConfig({ env: { APPLIANCE_CORS_ORIGINS: "http://a,http://b" } }).corsOrigins).toEqual(["http://a", "http://b"]);
  });
  test("a list of objects (upstreams, promptGuard.rules) is config file only: no flag, its variable an error saying so", async () => {
    expect([...FILE_ONLY].sort()).toEqual(["promptGuard.rules", "upstreams"]);
    const upstream = JSON.stringify([{ url: "http://10.0.0.5:8000/v1", models: ["m"] }]);
    expect(() => envLayer({ APPLIANCE_UPSTREAMS: upstream })).toThrow("upstreams: a list of objects, set in the config file only (not with APPLIANCE_UPSTREAMS)");
    expect(() => envLayer({ APPLIANCE_PROMPT_GUARD__RULES: "x" })).toThrow("promptGuard.rules: a list of objects, set in the config file only");
    expect(configFlagOptions()).not.toHaveProperty("upstreams");
    expect(await main(["config", "print", "--upstreams", upstream])).toBe(2); // an unknown option, not a string taken for an object
    const table = fs.readFileSync(path.join(import.meta.dir, "..", "README.md"), "utf8");
    expect(table).toContain("| `upstreams` | — | — | `[]` |");
    expect(table).toContain("| `promptGuard.rules` | — | — | `[]` |");
  });
  test("a variable that must be a number and is not: the error names the variable and its value, as the flag's does", () => {
    expect(() => envLayer({ APPLIANCE_PORT: "abc" })).toThrow("invalid config: port: APPLIANCE_PORT expects a number, got 'abc'");
    expect(() => envLayer({ APPLIANCE_RATE_LIMIT__RPM: " " })).toThrow("invalid config: rateLimit.rpm: APPLIANCE_RATE_LIMIT__RPM expects a number, got ' '");
    expect(envLayer({ APPLIANCE_PORT: "8080" })).toEqual({ port: 8080 });
  });
  test("config print masks secret values only, not the settings that name or point at one", () => {
    const c = parseConfig({
      tlsKey: "/etc/appliance/tls.key", rateLimit: { redisPasswordFile: "/run/pw", redisPasswordEnv: "REDIS_PW" },
      upstreams: [{ url: "http://10.0.0.5:8000/v1", apiKey: "sk-upstream-s3cret", models: ["m"] }],
      promptGuard: { specialTokens: "flag" }, gateway: { tokenPrompts: "forward" },
    });
    const shown = redactConfig(c) as Record<string, Record<string, unknown>>;
    expect(JSON.stringify(shown)).not.toContain("s3cret");
    expect((shown.upstreams as unknown as { apiKey: string }[])[0]!.apiKey).toBe("[redacted]");
    expect(shown.tlsKey).toBe("/etc/appliance/tls.key" as never);
    expect(shown.rateLimit).toMatchObject({ redisPasswordFile: "/run/pw", redisPasswordEnv: "REDIS_PW" });
    expect(shown.promptGuard!.specialTokens).toBe("flag");
    expect(shown.gateway!.tokenPrompts).toBe("forward");
  });
});

test("README configuration and command tables match the schema and the command records", () => {
  const r = Bun.spawnSync([process.execPath, "scripts/gen-config-doc.ts", "--check"], { cwd: `${import.meta.dir}/..` });
  expect(r.stderr.toString()).toBe("");
  expect(r.exitCode).toBe(0);
});

test("a prompt-guard rule that is not a valid regex is a config error naming it", () => {
  const file = path.join(tmpDir(), "rules.json");
  fs.writeFileSync(file, JSON.stringify({ promptGuard: { rules: [{ id: "x", pattern: "([a-z" }] } }));
  expect(() => loadConfig({ file, env: {} })).toThrow(/promptGuard\.rules\.0\.pattern: not a valid regular expression/);
});
