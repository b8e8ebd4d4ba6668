/**
 * Two compiled `appliance serve` processes on the tiny model, each with its OWN state dir (the keys
 * file copied from A to B, as a fleet would ship it), both pointed at one Redis: what an operator runs
 * behind a load balancer. Nothing but Redis connects them.
 */
import fs from "node:fs";
import path from "node:path";
import type { Subprocess } from "bun";
import { builtBinary, tinyModel, tmpDir, untilListening } from "../helpers";

export interface Instance {
  baseURL: string;
  log: () => string;
  proc: Subprocess;
}

export interface Pair {
  a: Instance;
  b: Instance;
  /** Key name → key. */
  keys: Record<string, string>;
  /** Runs the binary's CLI against A's state dir with the Redis settings; returns exit code and output. */
  cli: (args: string[]) => { code: number; out: string; err: string };
  stateA: string;
  stateB: string;
  stop: () => Promise<void>;
}

export async function serveBinary(bin: string, stateDir: string, env: Record<string, string>): Promise<Instance> {
  const proc = Bun.spawn([bin, "serve", "--state-dir", stateDir, "--port", "0", "--threads", "1"],
    { cwd: path.dirname(bin), stdout: "pipe", stderr: "pipe", env });
  const { port, log } = await untilListening(proc);
  return { baseURL: `http://127.0.0.1:${port}`, log, proc };
}

/** keySpecs: name → extra `keys create` flags. settings: extra APPLIANCE_* variables for both servers and the CLI. */
export async function startPair(redisUrl: string, keySpecs: Record<string, string[]>, settings: Record<string, string> = {}): Promise<Pair> {
  const dir = tmpDir("appliance-redis-pair-");
  const bin = path.join(dir, "appliance");
  fs.copyFileSync(await builtBinary(), bin);
  fs.chmodSync(bin, 0o755);
  const model = path.join(dir, "tiny.gguf");
  fs.copyFileSync(await tinyModel(), model);
  const env = {
    PATH: "/usr/bin:/bin", HOME: dir, APPLIANCE_RATE_LIMIT__STORE: "redis", APPLIANCE_RATE_LIMIT__REDIS_URL: redisUrl, ...settings,
  };
  const run = (args: string[]) => {
    const r = Bun.spawnSync([bin, ...args], { cwd: dir, env });
    return { code: r.exitCode, out: r.stdout.toString().trim(), err: r.stderr.toString() };
  };
  const must = (args: string[]) => {
    const r = run(args);
    if (r.code !== 0) throw new Error(`appliance ${args.join(" ")} exited ${r.code}: ${r.err}`);
    return r.out;
  };
  const stateA = path.join(dir, "state-a");
  const stateB = path.join(dir, "state-b");
  for (const s of [stateA, stateB]) must(["models", "add", model, "--state-dir", s]);
  const keys: Record<string, string> = {};
  for (const [name, flags] of Object.entries(keySpecs)) keys[name] = must(["keys", "create", "--name", name, ...flags, "--state-dir", stateA]);
  fs.copyFileSync(path.join(stateA, "keys.json"), path.join(stateB, "keys.json"));
  fs.chmodSync(path.join(stateB, "keys.json"), 0o600);
  const [a, b] = await Promise.all([serveBinary(bin, stateA, env), serveBinary(bin, stateB, env)]);
  return {
    a, b, keys, stateA, stateB,
    cli: (args) => run([...args, "--state-dir", stateA]),
    stop: async () => {
      for (const i of [a, b]) i.proc.kill("SIGTERM");
      await Promise.all([a.proc.exited, b.proc.exited]);
    },
  };
}
