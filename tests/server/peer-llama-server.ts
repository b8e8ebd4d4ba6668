/**
 * A real llama-server (the peer, built from node-llama-cpp's bundled source by scripts/peer-build.ts and cached
 * outside the repo) serving the tiny model on a free port, for tests that compare our output with the reference.
 */
import { peerBuild } from "../../scripts/peer-build";
import { tinyModel, until } from "../helpers";

export interface LlamaServer { base: string; proc: ReturnType<typeof Bun.spawn>; log: () => string; stop: () => void }

/** The peer's binaries, or why there are none (the caller skips loudly). */
export async function peerOrSkip(what: string): Promise<{ llamaServer: string } | undefined> {
  const peer = await peerBuild();
  if ("skip" in peer) {
    console.log(`!!! ${what} SKIPPED: ${peer.skip}`);
    return undefined;
  }
  return peer;
}

/** Starts llama-server on the tiny model (one thread) and resolves once its /health answers 200. */
export async function startLlamaServer(bin: string, args: string[] = []): Promise<LlamaServer> {
  const proc = Bun.spawn([bin, "-m", await tinyModel(), "--host", "127.0.0.1", "--port", "0", "-t", "1", "-c", "4096", "--alias", "tiny", ...args],
    { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  let text = "";
  const read = async (s: ReadableStream<Uint8Array>) => { for await (const c of s) text += new TextDecoder().decode(c); };
  void read(proc.stdout);
  void read(proc.stderr);
  const stop = () => proc.kill("SIGKILL");
  try {
    const base = await until(async () => {
      if (proc.exitCode !== null) throw new Error(`llama-server exited (${proc.exitCode}): ${text.slice(-2000)}`);
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(text);
      return m && await fetch(`${m[1]}/health`).then((r) => r.ok, () => false) ? m[1] : undefined;
    }, 60_000, "llama-server's /health");
    return { base, proc, log: () => text, stop };
  } catch (e) {
    stop();
    throw e;
  }
}
