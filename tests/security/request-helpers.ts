/**
 * Shared by the tests/security/request-*.test.ts files: raw HTTP over a TCP
 * socket (for what fetch refuses to send: bad Host, HTTP/1.0, half bodies) and
 * the compiled binary serving the tiny model with one key.
 */
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { builtBinary, tinyModel, tmpDir } from "../helpers";

export interface RawResponse { status: number; head: string; headers: Record<string, string>; body: string; closed: boolean }

/** Sends `payload` as is and reads until the server closes or `ms` passes (then the socket is destroyed). */
export function rawHttp(port: number, payload: string, ms = 30_000, localAddress?: string): Promise<RawResponse> {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host: "127.0.0.1", localAddress }, () => sock.write(payload));
    const chunks: Buffer[] = [];
    let closed = false;
    const done = () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString("utf8");
      const split = text.indexOf("\r\n\r\n");
      const head = split < 0 ? text : text.slice(0, split);
      const headers: Record<string, string> = {};
      for (const line of head.split("\r\n").slice(1)) {
        const i = line.indexOf(":");
        if (i > 0) headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
      }
      resolve({ status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0), head, headers, body: split < 0 ? "" : text.slice(split + 4), closed });
    };
    const timer = setTimeout(() => { sock.destroy(); done(); }, ms);
    sock.on("data", (d: Buffer) => chunks.push(d));
    sock.on("close", () => { closed = true; done(); });
    sock.on("error", () => {});
  });
}

export interface Served { port: number; key: string; dir: string; stateDir: string; log: () => string; stop: () => Promise<void> }

/** The compiled binary, alone in a temp dir, serving the tiny model (or opts.model, as "tiny") with one full key; stdout is collected. */
export async function serveBinary(extraArgs: string[] = [], opts: { model?: string; env?: Record<string, string> } = {}): Promise<Served> {
  const dir = tmpDir("appliance-sec-");
  const bin = path.join(dir, "appliance");
  fs.copyFileSync(await builtBinary(), bin);
  fs.chmodSync(bin, 0o755);
  const stateDir = path.join(dir, "state");
  const env = { PATH: "/usr/bin:/bin", HOME: dir };
  const model = path.join(dir, "tiny.gguf");
  fs.copyFileSync(opts.model ?? await tinyModel(), model);
  const run = (args: string[]) => {
    const r = Bun.spawnSync([bin, ...args], { cwd: dir, env });
    if (r.exitCode !== 0) throw new Error(`${args.join(" ")}: ${r.stderr.toString()}`);
    return r.stdout.toString();
  };
  run(["models", "add", model, "--state-dir", stateDir]);
  const key = run(["keys", "create", "--name", "sec", "--scopes", "chat,completions,embeddings,models,admin", "--state-dir", stateDir]).trim().split("\n")[0]!;
  const proc = Bun.spawn([bin, "serve", "--state-dir", stateDir, "--port", "0", "--threads", "1", ...extraArgs],
    { cwd: dir, env: { ...env, ...opts.env }, stdout: "pipe", stderr: "pipe" });
  let text = "";
  const reader = proc.stdout.getReader();
  const pump = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      text += new TextDecoder().decode(value);
    }
  })();
  const deadline = Date.now() + 60_000;
  while (!text.includes('"msg":"listening"')) {
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`serve did not start: ${text}${await new Response(proc.stderr).text()}`);
    await Bun.sleep(20); // polling the collected output with a deadline, not waiting for time to pass
  }
  const port = Number(/"port":(\d+)/.exec(text)![1]);
  return {
    port, key, dir, stateDir, log: () => text,
    stop: async () => { proc.kill("SIGKILL"); await proc.exited; await pump.catch(() => {}); fs.rmSync(dir, { recursive: true, force: true }); },
  };
}

/** Every line the server wrote to stdout, parsed; throws on a line that is not JSON. */
export function jsonLines(text: string): Record<string, unknown>[] {
  return text.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l) as Record<string, unknown>);
}
