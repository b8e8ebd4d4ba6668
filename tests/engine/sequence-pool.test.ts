/**
 * SequencePool's choice among free sequences of one scope (engine/sequence-pool.ts): the one sharing the longest
 * start, except that a lower sequence id sharing within NEAR (32) tokens of it is preferred, so concurrent streams
 * keep neighbouring ids (batch-order.ts). Real context of the tiny model, prompts evaluated whole in it.
 */
import { afterAll, expect, test } from "bun:test";
import type { LlamaContext, Token } from "node-llama-cpp";
import { SequencePool, reusable } from "../../src/engine/sequence-pool";
import { makeEngine } from "../helpers";

const engine = await makeEngine({ parallel: 2 });
afterAll(async () => { await engine.dispose(); });
// The engine's own pool never lends here (no request runs): this test's pool has the context's two sequences.
const context = (engine as unknown as { loaded: Map<string, { context: LlamaContext }> }).loaded.get("tiny")!.context;
const idOf = (s: unknown) => (s as { _sequenceId: number })._sequenceId;

/** n tokens of the tiny vocabulary from `seed` on (plain tokens, no control ones). */
const run = (seed: number, n: number) => Array.from({ length: n }, (_, i) => (10 + ((seed + i * 7) % 500)) as Token);

/** Two free sequences of scope "k": the first (lower id) holds A, the second B, each evaluated whole. */
async function twoHeld(pool: SequencePool, a: Token[], b: Token[]) {
  const first = await pool.take("k", a), second = await pool.take("k", b); // both lent at once: two sequences
  await first.sequence.evaluateWithoutGeneratingNewTokens(a);
  await second.sequence.evaluateWithoutGeneratingNewTokens(b);
  expect(idOf(first.sequence)).toBeLessThan(idOf(second.sequence));
  await first.giveBack(false);
  await second.giveBack(false);
  return { low: first.sequence, high: second.sequence };
}

const shared = run(1, 200);
const asked = [...shared, ...run(300, 60)];
const holding = (k: number) => [...shared.slice(0, k), ...run(600 + k, 200 - k)];

test("a higher id sharing up to 32 tokens more is passed over for the lower one", async () => {
  const pool = new SequencePool(context, true);
  const { low, high } = await twoHeld(pool, holding(100), holding(130));
  const lent = await pool.take("k", asked);
  expect(lent.sequence).toBe(low);
  expect(lent.reused).toBe(reusable(200, asked.length, 100));
  expect(lent.reused).toBe(100);
  await lent.giveBack(true);
  expect(high.disposed).toBe(false);
  await high.dispose();
});

test("one sharing more than 32 tokens more is taken", async () => {
  const pool = new SequencePool(context, true);
  const { low, high } = await twoHeld(pool, holding(100), holding(140));
  const lent = await pool.take("k", asked);
  expect(lent.sequence).toBe(high);
  expect(lent.reused).toBe(140);
  await lent.giveBack(true);
  await low.dispose();
});

/** Two free sequences: the lower id holds A for scope `sa`, the higher B for `sb`; given back in `order`. */
async function heldBy(pool: SequencePool, sa: string, a: Token[], sb: string, b: Token[], order: "low first" | "high first" = "low first") {
  const first = await pool.take(sa, a), second = await pool.take(sb, b);
  await first.sequence.evaluateWithoutGeneratingNewTokens(a);
  await second.sequence.evaluateWithoutGeneratingNewTokens(b);
  expect(idOf(first.sequence)).toBeLessThan(idOf(second.sequence));
  for (const s of order === "low first" ? [first, second] : [second, first]) await s.giveBack(false);
  return { low: first.sequence, high: second.sequence };
}

test("a start of its own under 32 tokens is reused, and another key's lower-id sequence keeps its prompt", async () => {
  // Isolation run: k1's own sequence shared 29 tokens, yet k2's (lower id, sharing 0) was cleared and taken.
  const pool = new SequencePool(context, true);
  const theirs = run(900, 160), mine = [...run(1, 29), ...run(700, 11)], asked = [...run(1, 29), ...run(800, 20)];
  const { low, high } = await heldBy(pool, "k2", theirs, "k1", mine);
  const lent = await pool.take("k1", asked);
  expect(lent.sequence).toBe(high);
  expect(lent.reused).toBe(reusable(mine.length, asked.length, 29));
  expect(lent.reused).toBeGreaterThan(0);
  expect(low.nextTokenIndex).toBe(theirs.length); // k2's start is still there for k2
  await lent.giveBack(true);
  await low.dispose();
});

test("nothing shared and no sequence left: the key's own free sequence is cleared before another key's, else the oldest", async () => {
  const pool = new SequencePool(context, true);
  const { low, high } = await heldBy(pool, "k2", run(900, 100), "k1", run(700, 100));
  const mine = await pool.take("k1", run(300, 50));
  expect(mine.sequence).toBe(high);
  expect(mine.reused).toBe(0);
  expect(low.nextTokenIndex).toBe(100);
  await mine.giveBack(true);
  await low.dispose();
  const pool2 = new SequencePool(context, true);
  const two = await heldBy(pool2, "k2", run(900, 100), "k3", run(700, 100), "high first");
  const stranger = await pool2.take("k1", run(300, 50));
  expect(stranger.sequence).toBe(two.high); // given back longest ago
  expect(two.low.nextTokenIndex).toBe(100);
  await stranger.giveBack(true);
  await two.low.dispose();
});
