/**
 * The engine slot serve builds its app on while llama.cpp builds the context (server/create-server.ts): before it is
 * bound it refuses every call that needs a model (and says it is not ready, with nothing running); once bound, every
 * call answers as the loaded engine does.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { EngineSlot } from "../../src/engine/engine-slot";
import type { LlamaEngine } from "../../src/engine/llama";
import { makeEngine } from "../helpers";

let engine: LlamaEngine;
beforeAll(async () => { engine = await makeEngine(); });
afterAll(async () => { await engine.dispose(); });

test("before it is bound: not ready, nothing running, and a call that needs the engine throws", () => {
  const slot = new EngineSlot();
  expect(slot.ready()).toBe(false);
  expect(slot.load()).toEqual({ active: 0, queued: 0 });
  expect(() => slot.models()).toThrow("the engine is not loaded yet");
  expect(() => slot.tokenize("tiny", "Hello")).toThrow("the engine is not loaded yet");
  expect(() => slot.backend).toThrow("the engine is not loaded yet");
});

test("once bound it answers as the engine: models, tokens, a completion; and it is bound once", async () => {
  const slot = new EngineSlot();
  slot.bind(engine);
  expect(slot.ready()).toBe(engine.ready());
  expect(slot.backend).toBe(engine.backend);
  expect(slot.models()).toEqual(engine.models());
  expect(slot.model("tiny")).toEqual(engine.model("tiny"));
  expect(slot.tokenize("tiny", "Hello there", true)).toEqual(engine.tokenize("tiny", "Hello there", true));
  expect(slot.countTokens("tiny", "Hello there")).toBe(engine.countTokens("tiny", "Hello there"));
  expect(slot.specialTokens("tiny")).toEqual(engine.specialTokens("tiny"));
  const call = { model: "tiny", prompt: "Once upon a time", sampling: { maxTokens: 4, temperature: 0 }, signal: new AbortController().signal };
  const [viaSlot, direct] = [await slot.complete(call), await engine.complete(call)];
  expect(viaSlot.text).toBe(direct.text);
  expect(typeof slot.expectArrival()).toBe("function");
  expect(() => slot.bind(engine)).toThrow("bound twice");
}, 120_000);
