/**
 * The compiled binary as a gateway: `appliance serve --config FILE` with
 * `upstreams` in the file, optionally with a local model of its own (copied as
 * local.gguf, so its id is "local" beside the upstream's "tiny").
 */
import fs from "node:fs";
import path from "node:path";
import { builtBinary, tinyModel, tmpDir, untilListening } from "../helpers";

export interface GatewayBinary { baseURL: string; key: string; log: () => string; stop: () => Promise<number> }

/** Runs the binary once to completion (setup commands, or a serve expected to fail). */
export function runBinary(bin: string, dir: string, args: string[], env: Record<string, string> = {}) {
  return Bun.spawnSync([bin, ...args], { cwd: dir, env: { PATH: "/usr/bin:/bin", HOME: dir, ...env } });
}

export async function prepareGateway(config: Record<string, unknown>, opts: { localModel?: boolean } = {}) {
  const dir = tmpDir("appliance-gwbin-");
  const bin = path.join(dir, "appliance");
  fs.copyFileSync(await builtBinary(), bin);
  fs.chmodSync(bin, 0o755);
  const stateDir = path.join(dir, "state");
  const ok = (args: string[]) => {
    const r = runBinary(bin, dir, [...args, "--state-dir", stateDir]);
    if (r.exitCode !== 0) throw new Error(`appliance ${args.join(" ")} exited ${r.exitCode}: ${r.stderr.toString()}`);
    return r.stdout.toString().trim();
  };
  if (opts.localModel) {
    const model = path.join(dir, "local.gguf");
    fs.copyFileSync(await tinyModel(), model);
    ok(["models", "add", model]);
  }
  const key = ok(["keys", "create", "--name", "client", "--scopes", "chat,completions,embeddings,models"]);
  const configFile = path.join(dir, "config.json");
  fs.writeFileSync(configFile, JSON.stringify({ stateDir, port: 0, threads: 1, ...config }));
  return { dir, bin, key, configFile };
}

/** Starts the gateway binary and waits for it to listen. */
export async function startGatewayBinary(config: Record<string, unknown>, opts: { localModel?: boolean; env?: Record<string, string> } = {}): Promise<GatewayBinary> {
  const { dir, bin, key, configFile } = await prepareGateway(config, opts);
  const proc = Bun.spawn([bin, "serve", "--config", configFile], { cwd: dir, stdout: "pipe", stderr: "pipe", env: { PATH: "/usr/bin:/bin", HOME: dir, ...opts.env } });
  const { port, log } = await untilListening(proc, "gateway");
  return {
    baseURL: `http://127.0.0.1:${port}`, key, log,
    stop: async () => { proc.kill("SIGTERM"); return proc.exited; },
  };
}
