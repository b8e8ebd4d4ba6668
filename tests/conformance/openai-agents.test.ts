/**
 * The OpenAI Agents SDK (@openai/agents-core + @openai/agents-openai) as the client, against the compiled binary,
 * on both of its model APIs: a multi-turn conversation (the history the SDK keeps, sent back with a new user turn)
 * and a forced function tool whose call and result go round the loop. A helper found that every multi-turn
 * conversation in its Chat Completions mode was a 400: the SDK echoes an answer's text as a content part carrying
 * the rest of the message (`role`, `refusal: null`; `annotations: []` when streamed), which the strict schema refused.
 * The model is random: the protocol is checked, not what it says.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Agent, run, setTracingDisabled, tool, type AgentInputItem } from "@openai/agents-core";
import { OpenAIProvider } from "@openai/agents-openai";
import { z } from "zod";
import { startBinary, type BinaryServer } from "./binary-server";

let server: BinaryServer;
beforeAll(async () => {
  setTracingDisabled(true); // its exporter would post traces to OpenAI
  server = await startBinary();
});
afterAll(async () => { expect(await server.stop()).toBe(0); });

/**
 * Every turn must end by itself: the SDK treats an answer cut by max_tokens as a failure (Responses: an incomplete
 * response). A structured output of one constant ends once written, whatever the random model would say.
 */
const done = z.object({ ok: z.literal(true) });
const settings = { temperature: 0, maxTokens: 128 };

for (const api of ["chat completions", "responses"] as const) {
  describe(`OpenAI Agents SDK, ${api}`, () => {
    const model = () => new OpenAIProvider({ apiKey: server.key, baseURL: `${server.baseURL}/v1`, useResponses: api === "responses" }).getModel("tiny");

    for (const stream of [false, true]) {
      test(`three turns, each sending the SDK's history back (${stream ? "streamed" : "not streamed"})`, async () => {
        const agent = new Agent({ name: "a", instructions: "Answer briefly.", model: await model(), modelSettings: settings, outputType: done });
        let history: AgentInputItem[] = [];
        for (const said of ["hello", "again", "and once more"]) {
          const input = [...history, { role: "user" as const, content: said }];
          const r = stream ? await run(agent, input, { stream: true }) : await run(agent, input);
          if (stream) await (r as { completed: Promise<void> }).completed;
          expect(r.finalOutput).toEqual({ ok: true });
          history = r.history;
        }
        // three user turns, each followed by the assistant's answer the SDK recorded and sent back
        expect(history.filter((i) => "role" in i && i.role === "user")).toHaveLength(3);
        expect(history.filter((i) => "role" in i && i.role === "assistant")).toHaveLength(3);
      }, 120_000);
    }

    test("a forced function tool: the SDK runs the call the server returned and ends on its result", async () => {
      const calls: string[] = [];
      const lookup = tool({
        name: "lookup", description: "Look a word up.", parameters: z.object({ word: z.enum(["cat"]) }),
        execute: async ({ word }) => { calls.push(word); return `definition of ${word}`; },
      });
      const agent = new Agent({
        name: "t", instructions: "Use the tool.", model: await model(), tools: [lookup],
        modelSettings: { ...settings, toolChoice: "required" }, toolUseBehavior: "stop_on_first_tool",
      });
      const r = await run(agent, "look up a word", { maxTurns: 2 });
      expect(calls).toEqual(["cat"]);
      expect(r.finalOutput).toBe("definition of cat");
      const kinds = r.history.map((i) => ("type" in i ? i.type : "message"));
      expect(kinds).toContain("function_call");
      expect(kinds).toContain("function_call_result");
    }, 120_000);
  });
}
