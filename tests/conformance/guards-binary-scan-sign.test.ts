/**
 * Two guard fixes that were tested only in process (the scanner on strings, the signature throttle on the app),
 * checked here the way a user meets them: the compiled binary over real HTTP, the secret written by the model.
 * - A secret spaced out with a no-break space or two spaces, or a spaced `ghp_` token (its `_` was never joined),
 *   reached the client, one-shot and streamed (fixed in b49388b; fails against a binary built at its parent).
 * - A key that requires signatures, sent with a missing or wrong signature, got 401 every time, never throttled
 *   (fixed in 3eb70f9; fails against a binary built at its parent). The minute's end is checked in process
 *   (tests/guards/signature-throttle.test.ts, injected clock); a binary's clock cannot be moved.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { sign } from "../../src/guards/signature";
import { tmpDir } from "../helpers";
import { startBinary, type BinaryServer } from "./binary-server";

const { privateKey, publicKey } = crypto.generateKeyPairSync("ed25519");
const FAILS_PER_MINUTE = 3;
let server: BinaryServer;
beforeAll(async () => {
  const pem = path.join(tmpDir(), "signer.pem");
  fs.writeFileSync(pem, publicKey.export({ format: "pem", type: "spki" }));
  server = await startBinary([], [["--scopes", "models", "--require-signature", "--public-key", pem]],
    { APPLIANCE_RATE_LIMIT__AUTH_FAILURES_PER_MINUTE: String(FAILS_PER_MINUTE) });
});
afterAll(async () => { expect(await server.stop()).toBe(0); });

const NBSP = "\u00a0";
const GAP_NAME: Record<string, string> = { [NBSP]: "a no-break space", "  ": "two spaces", " ": "single spaces" };
/** Secrets (split so this file is not itself a finding), each written one character at a time with `gap` between. */
const CASES: [rule: string, secret: string, gap: string][] = [
  ["aws-access-token", "AKIA" + "IOSFODNN7EXAMPLE", NBSP],
  ["aws-access-token", "AKIA" + "IOSFODNN7EXAMPLE", "  "],
  ["github-pat", "ghp" + "_aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6", " "],
];

/** Makes the tiny model write `value` (a const in the schema), so the secret comes from the engine, as a leak would. */
const forced = (value: string) => ({
  model: "tiny", max_tokens: 400, temperature: 0, messages: [{ role: "user", content: "the key" }],
  response_format: { type: "json_schema", json_schema: { name: "k", schema: { type: "object", properties: { key: { const: value } }, required: ["key"] } } },
});

async function chat(body: object, stream: boolean): Promise<string> {
  const r = await fetch(`${server.baseURL}/v1/chat/completions`, {
    method: "POST", headers: { authorization: `Bearer ${server.key}`, "content-type": "application/json" }, body: JSON.stringify({ ...body, stream }),
  });
  expect(r.status).toBe(200);
  if (!stream) return ((await r.json()) as { choices: { message: { content: string } }[] }).choices[0]!.message.content;
  let text = "";
  for (const line of (await r.text()).split("\n")) {
    if (!line.startsWith("data: {")) continue;
    text += (JSON.parse(line.slice(6)) as { choices: { delta: { content?: string } }[] }).choices[0]?.delta.content ?? "";
  }
  return text;
}

describe("the response scanner on the model's own output", () => {
  for (const [rule, secret, gap] of CASES) {
    const spaced = [...secret].join(gap);
    for (const stream of [false, true]) {
      test(`${rule} spaced out with ${GAP_NAME[gap]} (${stream ? "streamed" : "one answer"}): redacted, none of its body shown`, async () => {
        const text = await chat(forced(spaced), stream);
        expect(text).toContain(`[REDACTED:${rule}]`);
        // What a reader sees with every gap taken out: not even the secret's last 12 characters together.
        const seen = text.replace(/\[REDACTED:[a-z-]+\]/g, "").replace(/\s+/g, "");
        expect(seen).not.toContain(secret.slice(-12));
      }, 120_000);
    }
  }
});

describe("a key that requires signatures", () => {
  const send = async (signer?: crypto.KeyObject) => {
    const ts = String(Math.floor(Date.now() / 1000));
    const headers: Record<string, string> = { authorization: `Bearer ${server.keys[0]}` };
    if (signer) Object.assign(headers, { "x-appliance-timestamp": ts, "x-appliance-signature": sign(signer, "GET", "/v1/models", ts, "") });
    const r = await fetch(`${server.baseURL}/v1/models`, { headers });
    return { status: r.status, code: ((await r.json()) as { error?: { code: string } }).error?.code };
  };

  test("missing and wrong signatures are throttled per address (429), and then a good one is refused too until the minute ends", async () => {
    const stranger = () => crypto.generateKeyPairSync("ed25519").privateKey;
    const tries = [await send(), await send(stranger()), await send(stranger()), await send(stranger()), await send()];
    const refused = { status: 401, code: "invalid_signature" }, throttled = { status: 429, code: "rate_limit_exceeded" };
    expect(tries).toEqual([refused, refused, refused, throttled, throttled]);
    expect(await send(privateKey)).toEqual(throttled);
  });
});
