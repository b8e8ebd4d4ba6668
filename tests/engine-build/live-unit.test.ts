/**
 * A built engine under the hardened unit, on a live systemd (tests/live/systemd.ts): the service account, with
 * NoExecPaths=/ and the unit's ExecPaths=, loads an engine installed root-owned in the default engine dir
 * (/usr/local/lib/appliance/engine) after `systemctl restart`, and the pre-start verify checks it (as the service
 * account, with the hash cache root wrote). The engine is
 * node-llama-cpp's prebuilt files installed by installEngine() (a real compile takes ~15 min: engine-build-real).
 */
import { describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { DEFAULTS } from "../../src/config/load";
import { installEngine, versionDirOf } from "../../src/engine/engine-store";
import { builtBinary, tinyModel } from "../helpers";
import { active, curl, journal, printedKey, put, unitProp } from "../live/client";
import { bootOrSkip } from "../live/systemd";

const SYSTEM_ENGINE_DIR = DEFAULTS.engine.dir;

const live = await bootOrSkip("engine-build/live-unit.test.ts");
const T = 240_000;
const repo = path.resolve(import.meta.dir, "../..");
const nlcVersion = JSON.parse(fs.readFileSync(path.join(repo, "node_modules/node-llama-cpp/package.json"), "utf8")).version as string;
const prebuilt = path.join(repo, "node_modules/@node-llama-cpp/linux-x64/bins/linux-x64");

describe.skipIf(!live)("live systemd: a built engine under the unit", () => {
  const sys = live!;
  test("installed in the default engine dir: the service loads it (mapped from there) and serves; verify passes", async () => {
    const bin = put(sys, await builtBinary(), "appliance");
    const model = put(sys, await tinyModel(), "tiny.gguf");
    const r = sys.exec([bin, "install", "--model", model], { timeoutMs: T });
    expect(r.code, r.err).toBe(0);
    const key = printedKey(r.out);
    installEngine(path.join(sys.root, SYSTEM_ENGINE_DIR), prebuilt, { folder: "linux-x64", nlcVersion, release: "test", commit: "0".repeat(40), gpu: false,
      portable: true, openmp: false, cmakeOptions: {}, compiler: "node-llama-cpp prebuilt", cmake: "-", seconds: 0, builtAt: new Date().toISOString() });
    const restart = sys.exec(["systemctl", "restart", "appliance.service"], { timeoutMs: T });
    expect(restart.code, restart.err + journal(sys, "-u", "appliance.service", "-n", "30")).toBe(0);
    expect(active(sys)).toBe("active");
    const folder = path.join(versionDirOf(SYSTEM_ENGINE_DIR, nlcVersion), "linux-x64");
    const pid = unitProp(sys, "MainPID");
    expect(sys.exec(["cat", `/proc/${pid}/maps`]).out).toContain(path.join(folder, "llama-addon.node"));
    expect(journal(sys, "-u", "appliance.service")).toContain('"engine":"built"');
    const chat = curl(sys, "http://127.0.0.1:8000/v1/chat/completions", { body: { model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 4 }, key });
    expect(chat.status).toBe(200);
    const verify = sys.exec(["systemctl", "start", "appliance-verify.service"], { timeoutMs: T });
    expect(verify.code).toBe(0);
    expect(unitProp(sys, "Result", "appliance-verify.service")).toBe("success");
    // The unit's pre-start check (verify --skip-models, as the service account) takes the engine's sha256 from the
    // hash cache root wrote (here a manual verify as root, which reads every byte; engine build writes it too).
    const engineCheck = (argv: string[]) => {
      const out = sys.exec(argv, { timeoutMs: T }).out;
      return (JSON.parse(out.slice(out.indexOf("{"), out.lastIndexOf("}") + 1)) as { checks: { name: string; status: string; detail: string }[] }).checks.find((c) => c.name === "engine");
    };
    expect(engineCheck(["/usr/local/bin/appliance", "verify", "--json"])).toMatchObject({ status: "ok", detail: expect.stringContaining("(every byte read)") });
    const n = fs.readdirSync(prebuilt).length;
    expect(engineCheck(["systemd-run", "--wait", "--pipe", "--quiet", "-p", "User=appliance", "-E", "APPLIANCE_SERVICE=1", "-E", "APPLIANCE_CONFIG=/etc/appliance/config.json",
      "/usr/local/bin/appliance", "verify", "--json", "--skip-models"])).toMatchObject({ status: "ok", detail: expect.stringContaining(`(${n} of ${n} unchanged since root hashed them`) });
    const again = sys.exec(["systemctl", "restart", "appliance.service"], { timeoutMs: T });
    expect(again.code, again.err + journal(sys, "-u", "appliance.service", "-n", "30")).toBe(0);
  }, T);
});
