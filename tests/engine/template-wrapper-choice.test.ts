/**
 * The chat wrapper remembered across starts (issue 11 item 6): a start rebuilds it from (type, settings index)
 * instead of resolving it again, so the rebuilt wrapper must be exactly the one node-llama-cpp resolves from scratch.
 * Checked for the tiny model's ChatML and for other templates put in its metadata (Llama 3, Gemma, Llama 2, a
 * template no built-in wrapper matches → the Jinja wrapper, none at all): same class, every field equal, and the
 * same rendered context for a conversation with a system message and a reply.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { GeneralChatWrapper, getLlama, resolveChatWrapper, type ChatHistoryItem, type ChatWrapper, type LlamaModel } from "node-llama-cpp";
import { defaultTemplateLimits, resolveBoundedWrapper } from "../../src/engine/template-bound";
import { describeWrapper, fingerprint, rebuildWrapper, type WrapperChoice } from "../../src/engine/wrapper-choice";
import { tinyModel } from "../helpers";

const TEMPLATES: Record<string, string | undefined> = {
  llama3: "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + " +
    "'<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}" +
    "{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}",
  gemma: "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}" +
    "{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}" +
    "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}",
  llama2: "{% for message in messages %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + message['content'] + ' [/INST]' }}" +
    "{% elif message['role'] == 'system' %}{{ '<<SYS>>\\n' + message['content'] + '\\n<</SYS>>\\n\\n' }}{% elif message['role'] == 'assistant' %}" +
    "{{ ' ' + message['content'] + ' ' + eos_token }}{% endif %}{% endfor %}",
  custom: "{% for m in messages %}[[{{ m['role'] }}]] {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}[[assistant]] {% endif %}",
  none: undefined,
};

const HISTORY: ChatHistoryItem[] = [
  { type: "system", text: "Be brief." },
  { type: "user", text: "Hello there" },
  { type: "model", response: ["Hi."] },
  { type: "user", text: "And now?" },
  { type: "model", response: [] },
];

const llama = await getLlama({ gpu: false, build: "never", skipDownload: true, progressLogs: false });
const model: LlamaModel = await llama.loadModel({ modelPath: await tinyModel(), gpuLayers: 0 });
afterAll(async () => { await model.dispose(); await llama.dispose(); });

/** resolveChatWrapper's inputs for the tiny model with `template` as its chat template (undefined: none). */
function optionsWith(template: string | undefined) {
  const metadata = model.fileInfo.metadata;
  const tokenizer = { ...metadata.tokenizer, chat_template: template } as typeof metadata.tokenizer;
  return {
    bosString: model.tokens.bosString, architecture: metadata.general?.architecture, filename: model.filename,
    fileInfo: { ...model.fileInfo, metadata: { ...metadata, tokenizer } }, tokenizer: model.tokenizer,
  };
}

const rendered = (w: ChatWrapper) => JSON.stringify(w.generateContextState({ chatHistory: HISTORY }).contextText.toJSON());

describe("a remembered chat wrapper is the one resolved from scratch", () => {
  test("the tiny model's own template (ChatML)", () => {
    const options = optionsWith(model.fileInfo.metadata.tokenizer.chat_template);
    const resolved = resolveChatWrapper(options)!;
    const choice = describeWrapper(resolved, options)!;
    expect([choice.type, choice.filename]).toEqual(["chatML", model.filename ?? null]);
    const rebuilt = rebuildWrapper(JSON.parse(JSON.stringify(choice)) as WrapperChoice, options)!;
    expect(rebuilt.constructor).toBe(resolved.constructor);
    expect(fingerprint(rebuilt)).toBe(fingerprint(resolved)!);
    expect(rendered(rebuilt)).toBe(rendered(resolved));
  });

  for (const [name, template] of Object.entries(TEMPLATES)) {
    test(`template: ${name}`, () => {
      const options = optionsWith(template);
      const resolved = resolveChatWrapper(options) ?? new GeneralChatWrapper(); // what the engine does with no answer
      const choice = describeWrapper(resolved, options);
      expect(choice).toBeDefined();
      const rebuilt = rebuildWrapper(choice!, options)!;
      expect(rebuilt.constructor).toBe(resolved.constructor);
      expect(fingerprint(rebuilt)).toBe(fingerprint(resolved)!);
      expect(rendered(rebuilt)).toBe(rendered(resolved));
      if (name === "custom") expect(choice!.type).toBe("jinjaTemplate");
      if (name === "llama3") expect(choice!.type).toMatch(/^llama3/);
    });
  }

  test("a different settings index, type or file name is another wrapper or none", () => {
    const options = optionsWith(TEMPLATES.llama3);
    const choice = describeWrapper(resolveChatWrapper(options)!, options)!;
    expect(rebuildWrapper({ ...choice, filename: "other.gguf" }, options)).toBeUndefined();
    expect(rebuildWrapper({ ...choice, type: "constructor" }, options)).toBeUndefined();
    expect(rebuildWrapper({ ...choice, settings: 10_000 }, options)).toBeUndefined();
    const fp = fingerprint(resolveChatWrapper(options)!);
    const other = rebuildWrapper({ ...choice, type: "gemma", settings: 0 }, options);
    expect(other && fingerprint(other)).not.toBe(fp);
  });

  test("the engine's path: a remembered choice is rebuilt, not resolved; a fresh one is reported once", () => {
    const limits = defaultTemplateLimits();
    const reported: WrapperChoice[] = [];
    const first = resolveBoundedWrapper(model, limits, { remember: (c) => reported.push(c) });
    expect(reported).toHaveLength(1);
    const second = resolveBoundedWrapper(model, limits, { choice: reported[0], remember: (c) => reported.push(c) });
    expect(reported).toHaveLength(1); // rebuilt from memory: nothing resolved, nothing to report
    expect(fingerprint(second.chatWrapper)).toBe(fingerprint(first.chatWrapper)!);
    // A choice that does not apply (another file name) is ignored: resolved again and reported.
    resolveBoundedWrapper(model, limits, { choice: { ...reported[0]!, filename: "x" }, remember: (c) => reported.push(c) });
    expect(reported).toHaveLength(2);
    expect(reported[1]).toEqual(reported[0]!);
  });
});

test("a model loaded through a descriptor (as serve loads it) gets the same remembered choice whatever the descriptor's number", async () => {
  // Operator run: the choice kept node-llama-cpp's file name, /proc/self/fd/N's "N", which moved whenever a model was
  // added or removed or a template trial opened a pipe first, so the memo kept missing.
  const fs = await import("node:fs");
  const fds = [fs.openSync(await tinyModel(), "r"), fs.openSync(await tinyModel(), "r")];
  const reported: WrapperChoice[] = [];
  try {
    for (const fd of fds) {
      const m = await llama.loadModel({ modelPath: `/proc/self/fd/${fd}`, gpuLayers: 0, vocabOnly: true });
      try {
        expect(m.filename).toBe(String(fd));
        resolveBoundedWrapper(m, defaultTemplateLimits(), { remember: (c) => reported.push(c) });
      } finally { await m.dispose(); }
    }
  } finally { for (const fd of fds) fs.closeSync(fd); }
  expect(reported).toHaveLength(2);
  expect(reported[0]).toEqual(reported[1]!);
  expect(reported[0]!.filename).toBeNull();
});
