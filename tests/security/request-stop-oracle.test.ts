/**
 * Red-team run (stop 72): `stop` strings were looked for in what the model wrote, before the response scanner. A stop
 * equal to a redacted secret cut the answer before it (a wrong guess did not: an oracle, one guess a request), and a
 * stop just after a secret's start sent that start, too short to be a finding. They are now looked for in the text as
 * sent (server/stop-after-scan.ts): the answer with a stop string is the answer without it, as the client reads it,
 * cut before the stop. Chat (with tools too) and completions, streamed and not, through the real server (the grammar makes the tiny
 * model write the secret), with logprobs too.
 */
import { afterAll, expect, test } from "bun:test";
import { makeApp, makeEngine, req } from "../helpers";

const AWS = "AKIAIOSFODNN7EXAMPLE";
const TEXT = `x ${AWS} y z stop here`;
const engine = await makeEngine();
afterAll(() => engine.dispose());
const ctx = await makeApp({ engine });

/** Chat (json_schema const) or completions (a grammar through response_format), streamed or not: the text and finish. */
async function ask(route: "chat" | "tools" | "completions", stop: string[], stream: boolean, logprobs = false): Promise<{ text: string; finish: string }> {
  const format = { type: "json_schema", json_schema: { name: "s", schema: { type: "object", properties: { a: { const: TEXT } }, required: ["a"], additionalProperties: false } } };
  // With tools (tool_choice auto) the model writes the answer in the format or a call; the stops applied there too.
  const tools = route === "tools" ? { tools: [{ type: "function", function: { name: "f", parameters: { type: "object", properties: {} } } }] } : {};
  const body = route !== "completions"
    ? { model: "tiny", max_tokens: 200, temperature: 0, seed: 1, stream, stop, response_format: format, messages: [{ role: "user", content: "hi" }], ...tools, ...(logprobs && { logprobs: true, top_logprobs: 2 }) }
    : { model: "tiny", max_tokens: 200, temperature: 0, seed: 1, stream, stop, response_format: format, prompt: "hi", ...(logprobs && { logprobs: 2 }) };
  const r = await ctx.app.handle(req(`/v1/${route === "completions" ? "completions" : "chat/completions"}`, { key: ctx.key, json: body }));
  expect(r.status).toBe(200);
  if (!stream) {
    const c = ((await r.json()) as { choices: { message?: { content: string }; text?: string; finish_reason: string }[] }).choices[0]!;
    return { text: c.message?.content ?? c.text ?? "", finish: c.finish_reason };
  }
  let text = "", finish = "";
  for (const line of (await r.text()).split("\n")) {
    if (!line.startsWith("data: {")) continue;
    const c = (JSON.parse(line.slice(6)) as { choices: { delta?: { content?: string }; text?: string; finish_reason: string | null }[] }).choices[0];
    text += c?.delta?.content ?? c?.text ?? "";
    if (c?.finish_reason) finish = c.finish_reason;
  }
  return { text, finish };
}

test("a stop string that is a redacted secret, or runs into one, does not cut the answer; one in the text as sent does", async () => {
  for (const route of ["chat", "tools", "completions"] as const) for (const stream of [false, true]) for (const logprobs of [false, true]) {
    const plain = await ask(route, [], stream, logprobs);
    expect(plain.text).toContain("[REDACTED:aws-access-token] y z");
    // A right guess and a wrong one read the same: the stop is not in the text as sent.
    for (const stop of [AWS, AWS.slice(0, -1) + "F", "AKIAIOSF", "EXAMPLE y"]) {
      const r = await ask(route, [stop], stream, logprobs);
      expect({ route, stream, logprobs, stop, ...r }).toEqual({ route, stream, logprobs, stop, text: plain.text, finish: plain.finish });
      expect(r.text).not.toContain("AKIAIOSF");
    }
    // A stop in the text as sent cuts it there, as before; so does one that is part of the redaction's own text.
    for (const stop of [" y z", "[REDACTED"]) {
      const r = await ask(route, [stop], stream, logprobs);
      expect({ route, stream, logprobs, stop, ...r }).toEqual({ route, stream, logprobs, stop, text: plain.text.slice(0, plain.text.indexOf(stop)), finish: "stop" });
    }
  }
});

// Attack on the fix (stop 72): a non-streamed answer's later choices were watched through a filter that did not read
// them as answers (nor know that the prompt ended inside a key), so a right guess still ended choice 1 early.
test("every choice of n: a stop inside a key the prompt left open reads the same for a right and a wrong guess", async () => {
  const body = "q8Jd2ZkPz3N5kL0aVbXyRt7u";
  const text = `${body}\n-----END RSA PRIVATE KEY-----\nThat was the key. Some more text after it.`;
  const format = { type: "json_schema", json_schema: { name: "s", schema: { type: "object", properties: { a: { const: text } }, required: ["a"], additionalProperties: false } } };
  const answers: unknown[] = [];
  for (const stop of ["q8Jd2", "q8Jd3"]) for (const stream of [false, true]) {
    const r = await ctx.app.handle(req("/v1/chat/completions", { key: ctx.key, json: { model: "tiny", n: 2, max_tokens: 200, temperature: 0, seed: 1, stop: [stop],
      stream, ...(stream && { stream_options: { include_usage: true } }), response_format: format,
      messages: [{ role: "user", content: "Continue this key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx3Jk\n" }] } }));
    const raw = await r.text();
    expect(raw).not.toContain(body.slice(0, 8));
    let choices: string[], tokens: number;
    if (!stream) {
      const j = JSON.parse(raw) as { choices: { message: { content: string }; finish_reason: string }[]; usage: { completion_tokens: number } };
      choices = j.choices.map((c) => `${c.message.content}|${c.finish_reason}`);
      tokens = j.usage.completion_tokens;
    } else {
      const texts = ["", ""], finish = ["", ""];
      tokens = 0;
      for (const line of raw.split("\n")) {
        if (!line.startsWith("data: {")) continue;
        const e = JSON.parse(line.slice(6)) as { choices: { index: number; delta?: { content?: string }; finish_reason: string | null }[]; usage?: { completion_tokens: number } | null };
        for (const c of e.choices) { texts[c.index] += c.delta?.content ?? ""; if (c.finish_reason) finish[c.index] = c.finish_reason; }
        if (e.usage) tokens = e.usage.completion_tokens;
      }
      choices = texts.map((t, i) => `${t}|${finish[i]}`);
    }
    expect(choices[1]).toContain("That was the key.");
    answers.push({ stream, choices, tokens: stream ? 0 : tokens }); // streamed counts vary with timing (the scanner's hold)
  }
  expect(answers[0]).toEqual(answers[2]);
  expect(answers[1]).toEqual(answers[3]);
});
