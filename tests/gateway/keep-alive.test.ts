/**
 * The gateway's connections to an upstream are kept alive and reused: requests one after another, non-streamed
 * and streamed, go over a pooled connection (Bun's fetch), not a fresh TCP connection each, which would add a
 * connect round trip to every request (more where the upstream is on another host). The upstream is the compiled
 * binary on the tiny model, so this also checks that it does not close connections after each answer.
 *
 * Counted from the kernel's socket table (/proc/net/tcp and tcp6): every connection to or from the upstream's
 * port, open or closing — a closed one stays in TIME_WAIT for 60 s on whichever side closed it first — so one
 * reading after the requests sees every connection opened during them.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import fs from "node:fs";
import type OpenAI from "openai";
import type { BinaryServer } from "../conformance/binary-server";
import { startGatewayOverBinary, stopGatewayOverBinary, type GatewayApp } from "./gateway-helpers";

let up: BinaryServer | undefined, gw: GatewayApp | undefined, client: OpenAI;
beforeAll(async () => { ({ up, gw, client } = await startGatewayOverBinary()); }, 120_000);
afterAll(async () => { await stopGatewayOverBinary(up, gw); });

/** The far-end ports of every TCP connection (not the listening socket) whose one end is `port`. */
function connectionsOf(port: number): Set<number> {
  const out = new Set<number>();
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = "";
    try { text = fs.readFileSync(file, "utf8"); } catch { continue; } // no IPv6 in this kernel
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 4 || f[3] === "0A") continue; // 0A: LISTEN
      const local = parseInt(f[1]!.split(":")[1]!, 16), remote = parseInt(f[2]!.split(":")[1]!, 16);
      if (local === port) out.add(remote);
      else if (remote === port) out.add(local);
    }
  }
  return out;
}

test("40 requests in a row (20 non-streamed, 20 streamed) reach the upstream over at most a few connections", async () => {
  const port = Number(new URL(up!.baseURL).port);
  const before = connectionsOf(port);
  const messages = [{ role: "user" as const, content: "Say hello." }];
  for (let i = 0; i < 20; i++) {
    const r = await client.chat.completions.create({ model: "tiny", messages, max_tokens: 2 });
    expect(r.choices).toHaveLength(1);
  }
  for (let i = 0; i < 20; i++) {
    const stream = await client.chat.completions.create({ model: "tiny", messages, max_tokens: 2, stream: true });
    let chunks = 0;
    for await (const _ of stream) chunks++;
    expect(chunks).toBeGreaterThan(0);
  }
  const opened = [...connectionsOf(port)].filter((p) => !before.has(p));
  expect(opened.length).toBeGreaterThan(0); // the count sees the gateway's connections at all
  // The first attempt's connect probe (connect-probe.ts) and the pooled connection; a stream's tail still being
  // read when the next request starts may open one more. A connection per request would be 40 or more.
  expect(opened.length).toBeLessThanOrEqual(4);
}, 120_000);
