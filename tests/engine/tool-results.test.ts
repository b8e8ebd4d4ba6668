/**
 * Tool results in the prompt as the model's template writes a tool message's text (src/engine/tool-results.ts).
 * node-llama-cpp wrote a text result JSON-quoted (`"sunny"`, a multi-line text as one line of escapes) on templates
 * that write it as it is (Qwen 3's and DeepSeek-R1's GGUFs: a model-family run against @huggingface/jinja).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { DeepSeekChatWrapper, HarmonyChatWrapper, JinjaTemplateChatWrapper, Llama3_1ChatWrapper, MistralChatWrapper, QwenChatWrapper, type ChatWrapper } from "node-llama-cpp";
import { LlamaEngine } from "../../src/engine/llama";
import { probeToolResults } from "../../src/engine/template-bound";
import { toolResultForm, withToolResults } from "../../src/engine/tool-results";
import { Template } from "@huggingface/jinja";
import { LLAMA31_TEMPLATE, LLAMA31_TOKENS, RAW_TOOL_TEMPLATE, RAW_TOOL_TOKENS, hermesToolTemplate, makeEngine, rawToolModel, tinyModel } from "../helpers";

/** The same with the tool's text through `tojson`, as Llama 3.1's and gpt-oss's templates write it. */
const JSON_TOOL_TEMPLATE = RAW_TOOL_TEMPLATE.replace("{{ m.content }}\n</tool_response>", "{{ m.content | tojson }}\n</tool_response>");
/** A template with no tool role: it refuses one (Gemma's kind). */
const NO_TOOLS_TEMPLATE = "{%- for m in messages %}{%- if m.role == 'tool' %}{{ raise_exception('roles must alternate') }}{%- endif %}{{ m.role }}: {{ m.content }}\n{%- endfor %}";

const TEXT = "line one \"quoted\"\nline two";

test("the template is asked how it writes a tool message's text: as it is, as JSON, or not at all", () => {
  expect(toolResultForm(RAW_TOOL_TEMPLATE)).toBe("text");
  expect(toolResultForm(JSON_TOOL_TEMPLATE)).toBe("json");
  expect(toolResultForm(NO_TOOLS_TEMPLATE)).toBeUndefined();
  expect(toolResultForm("{% for %}")).toBeUndefined(); // does not parse
  expect(toolResultForm(undefined)).toBeUndefined();
});

const rendered = (w: ChatWrapper, result: unknown) => w.generateFunctionCallResult("get_weather", { city: "Paris" }, result).toString();

test("node-llama-cpp's formats write a text result between their own markers, as the template's form says", () => {
  for (const w of [new QwenChatWrapper(), new DeepSeekChatWrapper(), new Llama3_1ChatWrapper(), new MistralChatWrapper()]) {
    expect(rendered(w, TEXT)).toContain(JSON.stringify(TEXT)); // node-llama-cpp's own: JSON-quoted
    const asText = rendered(withToolResults(w, () => "text"), TEXT);
    expect(asText).toContain(TEXT);
    expect(asText).not.toContain(JSON.stringify(TEXT));
    expect(asText.replace(TEXT, JSON.stringify(TEXT))).toBe(rendered(w, TEXT)); // only the text differs: the markers are the wrapper's
    expect(rendered(withToolResults(w, () => "json"), TEXT)).toBe(rendered(w, TEXT));
    // a JSON text is written as sent (node-llama-cpp re-spaced the value it parsed)
    expect(rendered(withToolResults(w, () => "text"), "{\"t\":20}")).toContain("{\"t\":20}");
    expect(rendered(withToolResults(w, () => "json"), "{\"t\":20}")).toContain(JSON.stringify("{\"t\":20}"));
    // form unknown: as before, the text read as JSON where it is
    expect(rendered(withToolResults(w, () => undefined), "{\"t\":20}")).toBe(rendered(w, { t: 20 }));
  }
});

test("a call named with the slot's own word does not take the result's place (gpt-oss's format writes the name before it)", () => {
  const w = new HarmonyChatWrapper();
  const name = "applianceToolResultSlot";
  const own = w.generateFunctionCallResult(name, {}, TEXT).toString();
  expect(own).toContain(`functions.${name}`);
  expect(withToolResults(w, () => "text").generateFunctionCallResult(name, {}, TEXT).toString()).toBe(own.replace(JSON.stringify(TEXT), TEXT));
});

let engine: LlamaEngine;
let prompt: (messages: Parameters<LlamaEngine["chatTokens"]>[1]) => Promise<string>;
beforeAll(async () => {
  const path = await rawToolModel();
  engine = await makeEngine({ id: "raw", path, parallel: 1, maxQueue: 4 });
  const model = (engine as unknown as { loaded: Map<string, { model: { detokenize: (t: number[], special: boolean) => string } }> }).loaded.get("raw")!.model;
  const tools = [{ name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } }];
  prompt = async (messages) => model.detokenize(await engine.chatTokens("raw", messages, tools), true).replace(/ (?=\n)|(?<=>) /g, "");
}, 60_000);
afterAll(async () => { await engine.dispose(); });

test("a chat's tool result reaches the model as the template writes it: the text as it is", async () => {
  const call = { id: "c1", name: "get_weather", arguments: "{\"city\":\"Paris\"}" };
  const p = await prompt([{ role: "user", content: "Weather?" }, { role: "assistant", content: "", toolCalls: [call] }, { role: "tool", content: TEXT, toolCallId: "c1" }]);
  expect(p).toContain(`<tool_response>\n${TEXT}\n</tool_response>`);
  expect(p).not.toContain(JSON.stringify(TEXT));
  // a JSON result as the client wrote it
  const j = await prompt([{ role: "user", content: "Weather?" }, { role: "assistant", content: "", toolCalls: [call] }, { role: "tool", content: "{\"temp\":20}", toolCallId: "c1" }]);
  expect(j).toContain("<tool_response>\n{\"temp\":20}\n</tool_response>");
});

test("a template on one of node-llama-cpp's built-in formats is asked in a worker of its own: its answer, nothing for a loop", async () => {
  expect(await probeToolResults(RAW_TOOL_TEMPLATE, 10_000)).toBe("text");
  expect(await probeToolResults(JSON_TOOL_TEMPLATE, 10_000)).toBe("json");
  // A template that loops only on a tool conversation: the probe gives up in time, the event loop never waits on it.
  const looping = "{%- for m in messages %}{%- if m.role == 'tool' %}{%- for i in range(1000000000) %}{%- endfor %}{%- endif %}{{ m.content }}{%- endfor %}";
  const t0 = performance.now();
  let ticks = 0;
  const tick = setInterval(() => ticks++, 10);
  expect(await probeToolResults(looping, 300)).toBeUndefined();
  clearInterval(tick);
  expect(performance.now() - t0).toBeLessThan(5_000);
  expect(ticks).toBeGreaterThan(0);
});

test("on a built-in format (Llama 3.1 here, whose test template writes the text as it is) the result is written as the template writes it", async () => {
  const path = await tinyModel({}, { template: LLAMA31_TEMPLATE, controlTokens: LLAMA31_TOKENS });
  const llama = await makeEngine({ id: "l", path, parallel: 1, maxQueue: 4 });
  try {
    const model = (llama as unknown as { loaded: Map<string, { model: { detokenize: (t: number[], special: boolean) => string } }> }).loaded.get("l")!.model;
    const tools = [{ name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } }];
    const tokens = await llama.chatTokens("l", [{ role: "user", content: "Weather?" },
      { role: "assistant", content: "", toolCalls: [{ id: "c1", name: "get_weather", arguments: "{\"city\":\"Paris\"}" }] }, { role: "tool", content: TEXT, toolCallId: "c1" }], tools);
    const p = model.detokenize(tokens, true);
    expect(p).toContain("ipython");
    expect(p.replace(/ (?=\n)|(?<=>) /g, "")).toContain(`<|end_header_id|>\n\n${TEXT}<|eot_id|>`);
  } finally {
    await llama.dispose();
  }
});

const weather = { id: "c1", name: "get_weather", arguments: "{\"city\":\"Paris\"}" };
const withResult = (content: string) => [{ role: "user" as const, content: "Weather?" }, { role: "assistant" as const, content: "", toolCalls: [weather] },
  { role: "tool" as const, content, toolCallId: "c1" }];

test("a call id a later turn uses again: each turn's result stays under its own call (the last one was written under both)", async () => {
  const again = { ...weather, arguments: "{\"city\":\"Rome\"}" };
  const p = await prompt([...withResult("PARIS_RESULT"), { role: "assistant", content: "ok" }, { role: "user", content: "And Rome?" },
    { role: "assistant", content: "", toolCalls: [again] }, { role: "tool", content: "ROME_RESULT", toolCallId: "c1" }]);
  expect(p.match(/PARIS_RESULT/g)?.length).toBe(1);
  expect(p.match(/ROME_RESULT/g)?.length).toBe(1);
  expect(p.indexOf("PARIS_RESULT")).toBeLessThan(p.indexOf("Rome"));
  // An earlier call left without a result does not take the later turn's (it had it through any message with the id).
  const none = await prompt([{ role: "user", content: "Weather?" }, { role: "assistant", content: "", toolCalls: [weather] }, { role: "user", content: "And Rome?" },
    { role: "assistant", content: "", toolCalls: [again] }, { role: "tool", content: "ROME_RESULT", toolCallId: "c1" }]);
  expect(none.match(/ROME_RESULT/g)?.length).toBe(1);
  // The same id twice in one turn: the results in order (the second had replaced the first under both).
  const twice = await prompt([{ role: "user", content: "Weather?" }, { role: "assistant", content: "", toolCalls: [weather, again] },
    { role: "tool", content: "AAA_RESULT", toolCallId: "c1" }, { role: "tool", content: "BBB_RESULT", toolCallId: "c1" }]);
  expect(twice.match(/AAA_RESULT/g)?.length).toBe(1);
  expect(twice.indexOf("AAA_RESULT")).toBeLessThan(twice.indexOf("BBB_RESULT"));
  // A result after a user message (not right after its call) still goes with its call.
  const later = await prompt([{ role: "user", content: "Weather?" }, { role: "assistant", content: "", toolCalls: [weather] }, { role: "user", content: "hurry" },
    { role: "tool", content: "LATE_RESULT", toolCallId: "c1" }]);
  expect(later).toContain("LATE_RESULT");
});

test("a tojson Jinja template node-llama-cpp renders a second time (its first try threw: two calls in a turn) gets the text escaped once", () => {
  const template = hermesToolTemplate("{{ m.content | tojson }}").replace("{%- for c in m.tool_calls or [] %}",
    "{%- if (m.tool_calls or []) | length > 1 %}{{ raise_exception('one call per turn') }}{%- endif %}{%- for c in m.tool_calls or [] %}");
  const jinja = new JinjaTemplateChatWrapper({ template, tokenizer: (() => [-1, -1]) as never });
  expect(jinja.usingJinjaFunctionCallTemplate).toBe(true);
  const w = withToolResults(jinja, () => "json");
  const call = (city: string, result: string) => ({ type: "functionCall" as const, name: "get_weather", params: { city }, result });
  const text = w.generateContextState({ chatHistory: [{ type: "user", text: "Weather?" }, { type: "model", response: [call("Paris", TEXT), call("Rome", "R2")] }, { type: "model", response: [] }],
    availableFunctions: { get_weather: { params: { type: "object", properties: { city: { type: "string" } } } } } }).contextText.toString();
  expect(text).toContain(JSON.stringify(TEXT));
  expect(text).not.toContain(JSON.stringify(JSON.stringify(TEXT)).slice(1, -1));
});

/** The part of a rendered prompt from the tool's response to its end marker. */
const response = (p: string) => p.slice(p.indexOf("<tool_response>"), p.indexOf("</tool_response>") + 16);

test("a Jinja template whose call syntax node-llama-cpp reads (its own tool messages, not its markers) gets the text as the template writes it: trimmed, concatenated or tojson", async () => {
  // node-llama-cpp JSON-dumped the result for the first two (its object probe made `trim` and `+` throw) and put the
  // tojson one's text unescaped between the quotes the template wrote around its placeholder.
  for (const body of ["{{ m.content | trim }}", "{{ '' + m.content + '' }}", "{{ m.content | tojson }}"]) {
    const template = hermesToolTemplate(body);
    const path = await tinyModel({}, { template, controlTokens: RAW_TOOL_TOKENS });
    const e = await makeEngine({ id: "h", path, parallel: 1, maxQueue: 4 });
    try {
      const model = (e as unknown as { loaded: Map<string, { model: { detokenize: (t: number[], special: boolean) => string }; chatWrapper: { wrapperName: string } }> }).loaded.get("h")!;
      expect(model.chatWrapper.wrapperName).toBe("JinjaTemplate");
      const tools = [{ name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } }];
      // The tiny tokenizer's pieces after a control text may start with its word-start space (SentencePiece's): not
      // compared, on both sides alike (here a `"` after the text, which the template writes with its control text).
      const norm = (t: string) => t.replace(/ (?=\n|")|(?<=>) /g, "");
      const p = norm(model.model.detokenize(await e.chatTokens("h", withResult(TEXT), tools), true));
      const jinja = new Template(template).render({ messages: [{ role: "user", content: "Weather?" },
        { role: "assistant", content: "", tool_calls: [{ id: "c1", type: "function", function: { name: "get_weather", arguments: { city: "Paris" } } }] },
        { role: "tool", tool_call_id: "c1", content: TEXT }], add_generation_prompt: true });
      expect(response(p)).toBe(response(norm(jinja)));
    } finally {
      await e.dispose();
    }
  }
}, 120_000);

test("a Jinja-served template that cannot finish the probe still answers chats with results (node-llama-cpp's rendering): the probe is not counted against the chat's own bound", async () => {
  // It loops only on the probe's conversation (its tool is called `probe`); the chat's own messages render at once.
  const template = RAW_TOOL_TEMPLATE.replace("{%- elif m.role == 'tool' %}",
    "{%- elif m.role == 'tool' %}{%- if m.name == 'probe' %}{%- for a in range(100000) %}{%- for b in range(100000) %}{%- endfor %}{%- endfor %}{%- endif %}");
  const path = await tinyModel({}, { template, controlTokens: RAW_TOOL_TOKENS });
  const e = await makeEngine({ id: "p", path, parallel: 1, maxQueue: 4, chatTemplate: { ms: 400, chars: 1_000_000, workers: 1 } });
  try {
    const tools = [{ name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } }];
    for (let i = 0; i < 2; i++) expect((await e.chatTokens("p", withResult(TEXT), tools)).length).toBeGreaterThan(0); // was a 400 chat_template_bound, each time
  } finally {
    await e.dispose();
  }
}, 60_000);
