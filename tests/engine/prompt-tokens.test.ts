/**
 * A completion's prompt is evaluated exactly as counted: the model's BOS once, then the prompt's tokens. The engine
 * put a BOS in front and node-llama-cpp's LlamaCompletion put another one before it, so the model saw two (a prompt
 * unlike any it was trained on, and unlike llama-server's) and one token more was evaluated than prompt_tokens said.
 * Observed at the context's decode queue (node-llama-cpp's own, spied; nothing of ours replaced).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { LlamaEngine } from "../../src/engine/llama";
import { makeEngine } from "../helpers";

let engine: LlamaEngine;
beforeAll(async () => { engine = await makeEngine({ parallel: 1 }); }, 120_000);
afterAll(() => engine.dispose());

test("a completion evaluates one BOS and the prompt, as many tokens as prompt_tokens", async () => {
  const context = (engine as unknown as { loaded: Map<string, { context: Record<string, unknown> }> }).loaded.get("tiny")!.context;
  const decode = context._decodeTokens as (args: { tokens: number[] }, mapper: unknown) => Promise<unknown>;
  const queued: number[][] = [];
  context._decodeTokens = (args: { tokens: number[] }, mapper: unknown) => { queued.push([...args.tokens]); return decode.call(context, args, mapper); };
  try {
    for (const prompt of ["x y z", "Once upon a time"]) {
      queued.length = 0;
      const g = await engine.complete({ model: "tiny", prompt, sampling: { maxTokens: 1, temperature: 0 }, signal: new AbortController().signal });
      expect(queued[0]).toEqual(engine.tokenize("tiny", prompt, true)); // [BOS, ...prompt]: one BOS
      expect(queued[0]!.length).toBe(g.promptTokens);
    }
  } finally {
    context._decodeTokens = decode;
  }
}, 120_000);
