/**
 * Profile-guided bytecode layout for the binary (Bun's compile.bytecodeOrder): the build runs the binary it has just
 * made the way the service starts and answers (`models add` and `keys create` prepare a state dir; `serve` runs with
 * BUN_BYTECODE_ORDER_OUT set, answers /health and one chat, and is stopped), and builds it again with what that serve
 * used laid out first, so a start touches fewer pages of the program (bench-cold prints the page faults by /health).
 *
 * Only where the binary runs here (a linux-x64 target built on linux-x64; the CUDA one is recorded with --gpu off);
 * never fatal: without a recording the binary is built unprofiled, and the build says why.
 * - APPLIANCE_BYTECODE_ORDER=0 skips it (a quicker build for a quick check).
 * - APPLIANCE_BYTECODE_ORDER_FILE=PATH: an existing file is used as it is (no run); otherwise the recording is also
 *   kept there. A release builds every binary, and the reproducibility check's second build, from one recording
 *   (scripts/release.ts): two runs use a few different functions, and the layout is part of the bytes.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { makeTinyModel } from "../src/engine/tiny-model";
import { untilListening } from "./serve-listening";

/** How long each step of the recording may take (models add, keys create, serve from its start to its exit); past it the build goes on unprofiled. */
const RECORD_TIMEOUT_MS = 60_000;

const off = () => /^(0|false|no|off)$/i.test(process.env.APPLIANCE_BYTECODE_ORDER ?? "");

/** An order file given to build with (APPLIANCE_BYTECODE_ORDER_FILE, where it exists): no run is needed. */
export function givenBytecodeOrder(): string | undefined {
  const kept = process.env.APPLIANCE_BYTECODE_ORDER_FILE;
  return !off() && kept && fs.existsSync(kept) ? kept : undefined;
}

/** The order to build with: a given file, or one recorded from `bin` (`done` removes what the recording left), or why none. */
export async function bytecodeOrder(bin: string): Promise<{ file: string; done(): void } | { skip: string }> {
  if (off()) return { skip: "APPLIANCE_BYTECODE_ORDER=0" };
  const given = givenBytecodeOrder();
  if (given) return { file: given, done() {} };
  const kept = process.env.APPLIANCE_BYTECODE_ORDER_FILE;
  let dir: string | undefined;
  const done = () => { if (dir) fs.rmSync(dir, { recursive: true, force: true }); };
  try {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "appliance-order-"));
    const r = await recordBytecodeOrder(bin, dir);
    if ("skip" in r) { done(); return r; }
    if (kept) fs.copyFileSync(r.file, kept);
    return { file: r.file, done };
  } catch (e) {
    done();
    return { skip: (e as Error).message };
  }
}

/** The order file recorded by running `bin` in `dir` (which the caller removes), or why there is none; never throws. */
export async function recordBytecodeOrder(bin: string, dir: string): Promise<{ file: string } | { skip: string }> {
  const model = path.join(dir, "order.gguf"), stateDir = path.join(dir, "state"), file = path.join(dir, "serve.order");
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir, APPLIANCE_LOG_LEVEL: "info" };
  const run = (args: string[]) => {
    const r = Bun.spawnSync([bin, ...args, "--state-dir", stateDir], { env, timeout: RECORD_TIMEOUT_MS });
    if (r.exitCode !== 0) throw new Error(`appliance ${args[0]} ${args[1]}: exit ${r.exitCode}: ${r.stderr.toString().slice(-300)}`);
    return r.stdout.toString().trim();
  };
  let proc: Bun.Subprocess<"ignore", "pipe", "pipe"> | undefined;
  let deadline: ReturnType<typeof setTimeout> | undefined;
  try {
    await makeTinyModel(model);
    run(["models", "add", model]);
    const key = run(["keys", "create", "--name", "order", "--scopes", "chat,models"]);
    proc = Bun.spawn([bin, "serve", "--state-dir", stateDir, "--host", "127.0.0.1", "--port", "0", "--gpu", "off"],
      { env: { ...env, BUN_BYTECODE_ORDER_OUT: file }, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const running = proc;
    deadline = setTimeout(() => running.kill("SIGKILL"), RECORD_TIMEOUT_MS);
    const { port } = await untilListening(proc, "serve");
    const base = `http://127.0.0.1:${port}`, headers = { authorization: `Bearer ${key}`, "content-type": "application/json" };
    if (!(await fetch(`${base}/health`)).ok) throw new Error("/health did not answer 200");
    const chat = await fetch(`${base}/v1/chat/completions`, { method: "POST", headers,
      body: JSON.stringify({ model: "order", messages: [{ role: "user", content: "Hello" }], max_tokens: 2 }) });
    await chat.arrayBuffer();
    if (!chat.ok) throw new Error(`the chat answered ${chat.status}`);
    proc.kill("SIGTERM");
    const code = await proc.exited;
    if (code !== 0) throw new Error(`serve exited ${code}`);
    if (!fs.existsSync(file) || fs.statSync(file).size === 0) return { skip: "the run wrote no order file" };
    return { file };
  } catch (e) {
    if (proc && proc.exitCode === null) {
      proc.kill("SIGKILL");
      await proc.exited; // before the caller removes its dir
    }
    return { skip: (e as Error).message };
  } finally {
    clearTimeout(deadline);
  }
}
