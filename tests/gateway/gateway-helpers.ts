/**
 * Gateway-mode fixtures: the whole app (real guards, audit, key store) built
 * in-process with a gateway over the given upstreams, a breaker clock the test
 * moves, and health checks run on demand (no timer). Upstreams are real: the
 * compiled binary on the tiny model (tests/conformance/binary-server.ts), or a
 * small recording server where a test needs to see exactly what was sent.
 */
import path from "node:path";
import { parseConfig } from "../../src/config/load";
import type { ConfigInput } from "../../src/config/schema";
import { LlamaEngine } from "../../src/engine/llama";
import { Gateway } from "../../src/gateway/gateway";
import { KeyStore, keysFilePath } from "../../src/guards/keys";
import { AuditLog } from "../../src/log/audit";
import { silentLogger, type Logger } from "../../src/log/logger";
import type { createApp } from "../../src/server/app";
import { createServer } from "../../src/server/create-server";
import { tmpDir } from "../helpers";
import { startBinary, type BinaryServer } from "../conformance/binary-server";
import OpenAI from "openai";

export interface GatewayApp {
  app: ReturnType<typeof createApp>;
  gateway: Gateway;
  baseURL: string;
  key: string;
  auditFile: string;
  /** Moves the breakers' clock. */
  advance: (ms: number) => void;
  close: () => Promise<void>;
}

let engine: Promise<LlamaEngine> | undefined;
/** An engine with no local models: this gateway serves upstream models only. */
const noModels = () => (engine ??= LlamaEngine.create({ models: [], threads: 1, ctxSize: 512, parallel: 1, maxQueue: 1, gpu: false, log: silentLogger() }));

/** The app with a gateway, listening on a free loopback port. */
export async function startGateway(config: ConfigInput, log: Logger = silentLogger()): Promise<GatewayApp> {
  const stateDir = tmpDir("appliance-gw-");
  const cfg = parseConfig({ stateDir, ...config } as Record<string, unknown>);
  let now = 1_700_000_000_000;
  const clock = () => now;
  const store = new KeyStore(keysFilePath(stateDir), Date.now);
  const key = store.create({ name: "client", scopes: ["chat", "completions", "embeddings", "models"] }).key;
  const gateway = new Gateway(cfg, log, { clock, every: () => () => {} });
  const eng = await noModels();
  const auditFile = path.join(stateDir, "audit.jsonl");
  const { app } = await createServer(cfg, { log, engine: eng, keys: store, audit: new AuditLog(auditFile), gateway });
  app.listen({ hostname: "127.0.0.1", port: 0 });
  return {
    app, gateway, key, auditFile, baseURL: `http://127.0.0.1:${app.server!.port}`,
    advance: (ms) => { now += ms; },
    close: async () => { await app.stop(true); },
  };
}

/** What a recording upstream saw of one request. */
export interface Seen { method: string; path: string; headers: Record<string, string>; body: string }

/**
 * A small OpenAI-shaped server that records every request it gets and answers with `answer`
 * (default: a one-word chat completion). For header, redirect and scanner checks only.
 */
export function recordingUpstream(answer?: (req: Request, seen: Seen) => Response | Promise<Response>) {
  const seen: Seen[] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1", port: 0,
    async fetch(req) {
      const s: Seen = { method: req.method, path: new URL(req.url).pathname, headers: Object.fromEntries(req.headers), body: await req.text() };
      seen.push(s);
      if (answer) return answer(req, s);
      if (s.path.endsWith("/models")) return Response.json({ object: "list", data: [] });
      return Response.json({
        id: "chatcmpl-1", object: "chat.completion", created: 1, model: "m",
        choices: [{ index: 0, message: { role: "assistant", content: "hello" }, finish_reason: "stop" }],
        usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
      });
    },
  });
  return { url: `http://127.0.0.1:${server.port}/v1`, seen, stop: () => server.stop(true) };
}

/** SSE body from a list of events, sent in pieces of `size` characters. */
export function sseChunks(events: unknown[], size = 1_000_000): ReadableStream<Uint8Array> {
  const text = events.map((e) => `data: ${typeof e === "string" ? e : JSON.stringify(e)}\n\n`).join("");
  const enc = new TextEncoder();
  let i = 0;
  return new ReadableStream({
    pull(c) {
      if (i >= text.length) return c.close();
      c.enqueue(enc.encode(text.slice(i, i + size)));
      i += size;
    },
  });
}

/** A chat.completion.chunk with `delta` (finish null unless given). */
export const chatChunk = (delta: Record<string, unknown>, finish: string | null = null) =>
  ({ id: "chatcmpl-x", object: "chat.completion.chunk", created: 1, model: "m", choices: [{ index: 0, delta, finish_reason: finish }] });

/** A gateway with no local model fronting the compiled binary (on the tiny model, 2 slots), and the openai SDK on the gateway. */
export async function startGatewayOverBinary(): Promise<{ up: BinaryServer; gw: GatewayApp; client: OpenAI }> {
  const up = await startBinary(["--parallel", "2"]);
  const gw = await startGateway({ upstreams: [{ url: `${up.baseURL}/v1`, apiKey: up.key, models: ["tiny"] }] });
  return { up, gw, client: new OpenAI({ apiKey: gw.key, baseURL: `${gw.baseURL}/v1`, maxRetries: 0 }) };
}

/** Closes the gateway, then stops the upstream binary; resolves to the binary's exit code (0 = a clean drain). */
export async function stopGatewayOverBinary(up: BinaryServer | undefined, gw: GatewayApp | undefined): Promise<number | undefined> {
  await gw?.close();
  return up?.stop();
}
