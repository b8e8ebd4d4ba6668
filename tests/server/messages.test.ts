/** Every message shape OpenAI accepts, as the official SDK sends it in multi-turn conversations. */
import { describe, expect, test } from "bun:test";
import OpenAI from "openai";
import { sdkApp } from "./sdk-app";

const srv = sdkApp();

type Msg = OpenAI.Chat.Completions.ChatCompletionMessageParam;
const ask = (messages: Msg[]) => srv.client.chat.completions.create({ model: "tiny", messages, max_tokens: 4, temperature: 0 });

const error = (p: Promise<unknown>) => p.then(() => { throw new Error("expected an error"); }, (e) => e as InstanceType<typeof OpenAI.APIError>);

describe("multi-turn", () => {
  test("the returned message, echoed back as the SDK documents, is accepted", async () => {
    const history: Msg[] = [{ role: "user", content: "hello" }];
    const first = await ask(history);
    const echoed = first.choices[0]!.message;
    expect(echoed).toHaveProperty("refusal", null);
    history.push(echoed, { role: "user", content: "and again" });
    const second = await ask(history);
    expect(second.usage!.prompt_tokens).toBeGreaterThan(first.usage!.prompt_tokens);
  });

  test("assistant messages with every OpenAI field, tool results and content parts", async () => {
    const messages: Msg[] = [
      { role: "developer", content: [{ type: "text", text: "be brief" }] },
      { role: "user", content: [{ type: "text", text: "weather?" }], name: "ann" },
      {
        role: "assistant", content: null, refusal: null, audio: null, function_call: null,
        tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: "{\"city\":\"Oslo\"}" } }],
        annotations: [],
      } as Msg,
      { role: "tool", tool_call_id: "call_1", content: "{\"temp\":3}" },
      { role: "assistant", content: [{ type: "refusal", refusal: "I cannot." }] },
      { role: "assistant", content: null, refusal: "No." },
      { role: "user", content: "thanks" },
    ];
    const r = await ask(messages);
    expect(r.choices[0]!.message.role).toBe("assistant");
    // The tool call and its result are part of the prompt.
    const without = await ask([messages[0]!, messages[1]!, { role: "user", content: "thanks" }]);
    expect(r.usage!.prompt_tokens).toBeGreaterThan(without.usage!.prompt_tokens + 10);
  });

  test("a tool result that answers no call → 400 naming its tool_call_id", async () => {
    const e = await error(ask([{ role: "user", content: "x" }, { role: "tool", tool_call_id: "call_9", content: "1" }]));
    expect(e.status).toBe(400);
    expect(e.param).toBe("messages[1].tool_call_id");
  });

  test("tool call arguments that are not JSON → 400 naming them", async () => {
    const e = await error(ask([{ role: "user", content: "x" },
      { role: "assistant", tool_calls: [{ id: "c", type: "function", function: { name: "f", arguments: "{oops" } }] }]));
    expect(e.status).toBe(400);
    expect(e.param).toBe("messages[1].tool_calls[0].function.arguments");
  });

  test("an image part → 400 unsupported_content naming the part", async () => {
    const e = await error(ask([{ role: "user", content: [{ type: "text", text: "what is this" }, { type: "image_url", image_url: { url: "data:," } }] }]));
    expect(e.status).toBe(400);
    expect(e.code).toBe("unsupported_content");
    expect(e.param).toBe("messages[0].content[1]");
  });

  test("an unknown role → 400 naming it", async () => {
    const e = await error(ask([{ role: "robot", content: "x" } as never]));
    expect(e.status).toBe(400);
    expect(e.param).toBe("messages[0].role");
  });
});

describe("content parts", () => {
  test("text parts are joined with a newline (vLLM, llama-server), so words at a seam do not run together", async () => {
    // peer-fidelity run: parts ["hel", "lo"] were rendered "hello" (LangChain, the Agents SDK send context and question apart)
    const asParts = await ask([{ role: "system", content: [{ type: "text", text: "be" }, { type: "text", text: "brief" }] },
      { role: "user", content: [{ type: "text", text: "end." }, { type: "text", text: "Question" }] }]);
    const asText = await ask([{ role: "system", content: "be\nbrief" }, { role: "user", content: "end.\nQuestion" }]);
    const fused = await ask([{ role: "system", content: "bebrief" }, { role: "user", content: "end.Question" }]);
    expect(asParts.usage!.prompt_tokens).toBe(asText.usage!.prompt_tokens);
    expect(asParts.usage!.prompt_tokens).not.toBe(fused.usage!.prompt_tokens);
    expect(asParts.choices[0]!.message.content).toBe(asText.choices[0]!.message.content); // greedy: the same prompt
    const responses = (input: OpenAI.Responses.ResponseInput) => srv.client.responses.create({ model: "tiny", input, max_output_tokens: 4, temperature: 0 });
    const r1 = await responses([{ role: "user", content: [{ type: "input_text", text: "end." }, { type: "input_text", text: "Question" }] }]);
    const r2 = await responses([{ role: "user", content: "end.\nQuestion" }]);
    expect([r1.usage!.input_tokens, r1.output_text]).toEqual([r2.usage!.input_tokens, r2.output_text]);
  });
});
