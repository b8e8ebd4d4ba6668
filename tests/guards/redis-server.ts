/**
 * A real redis-server (Debian package) for the shared-state tests, listening on a unix socket in a
 * temp dir only (no TCP port at all), with persistence off. Where redis-server is missing the tests
 * print `!!! REDIS TESTS SKIPPED: <reason>` and skip.
 */
import path from "node:path";
import type { Subprocess } from "bun";
import { tmpDir } from "../helpers";

export const REDIS_SERVER = Bun.which("redis-server");

/** Prints the loud skip line once per file; returns true when the Redis tests must skip. */
export function redisMissing(file: string): boolean {
  if (REDIS_SERVER) return false;
  console.log(`!!! REDIS TESTS SKIPPED: redis-server is not installed (Debian: apt-get install redis-server; scripts/test-tools.sh does it) [${file}]`);
  return true;
}

export interface RedisServer {
  /** redis+unix:///…/redis.sock */
  url: string;
  /** Stops it (SIGKILL: an outage, not a shutdown). */
  kill(): Promise<void>;
  /** Starts it again on the same socket, empty. */
  start(): Promise<void>;
}

export async function startRedis(extra: string[] = []): Promise<RedisServer> {
  const dir = tmpDir("appliance-redis-");
  const sock = path.join(dir, "redis.sock");
  let proc: Subprocess<"ignore", "pipe", "pipe"> | undefined;
  const start = async () => {
    proc = Bun.spawn([REDIS_SERVER!, "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
      "--dir", dir, "--loglevel", "notice", ...extra], { stdout: "pipe", stderr: "pipe" });
    // Ready when it says so (an event, not a sleep); it writes the line to stdout.
    const reader = proc.stdout.getReader();
    let text = "";
    const deadline = Date.now() + 20_000;
    while (!/ready to accept connections/i.test(text)) {
      const { value, done } = await reader.read();
      if (done || Date.now() > deadline) throw new Error(`redis-server did not start: ${text}${await new Response(proc.stderr).text()}`);
      text += new TextDecoder().decode(value);
    }
    reader.releaseLock();
    void proc.stdout.pipeTo(new WritableStream()).catch(() => {}); // keep draining
  };
  await start();
  return {
    url: `redis+unix://${sock}`,
    async kill() { proc?.kill("SIGKILL"); await proc?.exited; },
    start,
  };
}
