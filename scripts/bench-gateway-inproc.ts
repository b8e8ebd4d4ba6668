/**
 * The gateway's own code, with no HTTP hop and no other process in front of it (used by bench-gateway.ts):
 * POST /v1/chat/completions for a stub upstream's model through app.handle() of an in-process gateway
 * (every guard and the audit on, as `serve` builds it through createServer), against a plain fetch of the
 * same body to the same stub. The difference is what the gateway's request path itself costs: guards, prompt
 * guard, body copy and serialisation, the upstream call's bookkeeping, the scan and re-serialisation of the
 * answer. The stub runs in this process for both sides alike.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseConfig } from "../src/config/load";
import { LlamaEngine } from "../src/engine/llama";
import { KeyStore, keysFilePath } from "../src/guards/keys";
import { silentLogger } from "../src/log/logger";
import { createServer } from "../src/server/create-server";

/** `warmup` requests per side first (the JIT compiles the request path over the first thousand or so). */
export async function gatewayCodeCost(stubBase: string, requests: number, warmup = 100): Promise<{ direct: number[]; via: number[] }> {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "appliance-bench-gw-inproc-"));
  try {
    const config = parseConfig({ stateDir, upstreams: [{ url: `${stubBase}/v1`, models: ["stub"] }], gateway: { healthIntervalMs: 0 } });
    const keys = new KeyStore(keysFilePath(stateDir));
    const key = keys.create({ name: "bench", rpm: 1e7, tpm: 1e9 }).key; // limits that never bite: every request runs them
    const log = silentLogger();
    const engine = await LlamaEngine.create({ models: [], threads: 1, ctxSize: 512, parallel: 1, maxQueue: 1, gpu: false, log });
    const { app, gateway } = await createServer(config, { engine, keys, log });
    const body = JSON.stringify({ model: "stub", messages: [{ role: "user", content: "Say hello." }], max_tokens: 1, temperature: 0 });
    const via = async () => {
      const t0 = performance.now();
      const r = await app.handle(new Request("http://localhost/v1/chat/completions", {
        method: "POST", body, headers: { authorization: `Bearer ${key}`, "content-type": "application/json" } }));
      await r.arrayBuffer();
      if (r.status !== 200) throw new Error(`gateway in process: ${r.status}`);
      return performance.now() - t0;
    };
    const direct = async () => {
      const t0 = performance.now();
      const r = await fetch(`${stubBase}/v1/chat/completions`, { method: "POST", body, headers: { "content-type": "application/json" } });
      await r.arrayBuffer();
      return performance.now() - t0;
    };
    for (let i = 0; i < warmup; i++) { await via(); await direct(); } // warm-up
    const out = { direct: [] as number[], via: [] as number[] };
    for (let i = 0; i < requests; i++) {
      if (i % 2) { out.direct.push(await direct()); out.via.push(await via()); } else { out.via.push(await via()); out.direct.push(await direct()); }
    }
    gateway?.stop();
    await engine.dispose();
    return out;
  } finally {
    fs.rmSync(stateDir, { recursive: true, force: true });
  }
}
