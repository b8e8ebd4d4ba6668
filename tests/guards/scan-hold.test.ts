/**
 * Issue 11 item 5: the response scanner held back the last three whitespace-separated words (up to ~261
 * characters), so an answer with no spaces (CJK text, the tiny random model's glued words) reached the client
 * as one chunk at the end. It now holds only text that some rule could still extend into a finding
 * (live-tail.ts): these tests pin what is held after each character and check, through the real server, that
 * an answer without spaces streams in many chunks.
 */
import { afterAll, expect, test } from "bun:test";
import { parseConfig } from "../../src/config/load";
import { createScanner } from "../../src/guards/response-scan";
import { listenApp, makeApp, makeEngine } from "../helpers";

/** Every chunk scanned on arrival (no burst batching), as at generation speed. */
const scanner = createScanner(parseConfig({ responseScan: { burstChars: 0 } }).responseScan);

/** Feeds `text` one character at a time; returns what was held back after the last one. */
function heldAfter(text: string): string {
  const f = scanner.filter();
  let out = "";
  for (const ch of text) out += f.push(ch);
  expect(out + text.slice(text.length - f.pending)).toBe(text); // nothing in these texts is redacted
  return text.slice(text.length - f.pending);
}

test("text no rule can extend into a finding is released at once", () => {
  for (const text of ["数据模型服务安全", "日本語のテキスト。", "🙂👍 ", "!?; (){}<>\n", "… «»"]) {
    const f = scanner.filter();
    let out = "";
    for (const ch of text) { out += f.push(ch); expect({ text, held: f.pending }).toEqual({ text, held: 0 }); }
    expect(out).toBe(text);
  }
});

test("what is held is exactly the tail a rule could still extend", () => {
  const cases: [string, string][] = [
    ["hello wor", "wor"], // "wor" + ".corp": an internal host name's first label
    ["hello, world ", ""],
    ["see AK", "AK"], // an AWS key's prefix
    ["see CIA", "CIA"], // a label still; but "A" alone after "CI" is not an AWS start (\b)
    ["see CIA!", ""],
    ["key AKIAIOSF", "AKIAIOSF"],
    ["the passw", "passw"],
    ["the password is Tr0ub", "password is Tr0ub"],
    ["x ghp_abc", "ghp_abc"],
    ["see eyJhbGciOiJIUzI1NiJ9", "eyJhbGciOiJIUzI1NiJ9"], // a JWT header being written
    ["token: eyJhbGciOiJI", "token: eyJhbGciOiJI"], // "token: <value>": an assignment being written
    ["Как дела", "а"], // Cyrillic look-alikes read as Latin letters ("дела" reads "дeлa"): "a" may start a host label
    ["here -----BEG", "-----BEG"], // PEM armor being written
    ["data QUJDREVG", "QUJDREVG"], // base64 of printable text: could be an encoded secret
    ["data hellowor", "hellowor"], // held by the host-label rule only; "hell" is no printable base64 quad
    ["go to 10.0", "10.0"],
    ["go to 10.0. ", ""],
    ["call +1 555", "555"], // phone numbers are PII (off by default); "555" may still be a host label
    ["port :", ":"], // "::1"
    ["at [", "["], // "[::1]"
    ["a —", "a —"], // a dash look-alike reads as "-": standing alone after "a", the two may begin a spaced-out "a-…" token
    ["a, —", "—"], // "-" may start a host label
    ["数据 A K I", "A K I"], // a spaced-out key being written
    ["数据 A K I ", "A K I "],
    ["数据\u{1d400}", "\u{1d400}"], // a mathematical A (reads as "A"): held as AWS/label start, never half a pair
  ];
  for (const [text, held] of cases) expect({ text, held: heldAfter(text) }).toEqual({ text, held });
});

test("without the host rule, a word is held as a possible encoded secret only while its base64 bytes so far are printable", () => {
  // A base64 quad still being written fixes its first byte with two characters and its second with three: "th"
  // starts with byte 0xB6 and "QYA" has 0x80 second, so neither can decode to the printable text an encoded secret
  // is; "QU" (A…) and "QUJ" (AB…) can. Before, any run shorter than a quad was held. A lone hex digit 8-f or 1
  // cannot start a printable byte either (the run "8" is still base64's to judge).
  const noHost = createScanner(parseConfig({ responseScan: { burstChars: 0, internalHosts: [] } }).responseScan);
  const held = (text: string) => {
    const f = noHost.filter();
    let out = "";
    for (const ch of text) out += f.push(ch);
    return text.slice(text.length - f.pending);
  };
  const cases: [string, string][] = [["data th", ""], ["data QU", "QU"], ["data QUJ", "QUJ"], ["data QYA", ""], ["data QUJDREVG", "QUJDREVG"], ["data QUJDRE", "QUJDRE"]];
  // Among a run's first 24 characters (a run is decoded from 24 on, its quads there whole) the characters so far
  // fix the high bits of the next byte too: "ZZ" makes it 0x9?, "QUK" 0x8? or over, and a 21st character "l"
  // 0x94-0x97, none printable. A 25th one is held: a run that ends there is decoded without it. A run closed by
  // `=` before 24 characters never is one.
  cases.push(["data ZZ", ""], ["data QUK", ""], ["data QUJDREVGR0hJSktMTU5Pl", ""], ["data QUJDREVGR0hJSktMTU5PUl", "QUJDREVGR0hJSktMTU5PUl"],
    ["data QUJDREVGR0hJSktMTU5PUFFSl", "QUJDREVGR0hJSktMTU5PUFFSl"], ["data QQ==", ""], ["data QQ=", ""]);
  for (const [text, want] of cases) expect({ text, held: held(text) }).toEqual({ text, held: want });
});

test("a word (with its dots: a host name's labels) is held until it ends at most, never the words before it", () => {
  const text = "Servers answer quickly when the queue is short, and the scanner keeps up with them. ";
  const f = scanner.filter();
  let out = "";
  for (const ch of text) {
    out += f.push(ch);
    const sent = out.length, word = /[A-Za-z0-9.-]*$/.exec(text.slice(0, sent + f.pending))![0];
    expect(f.pending).toBeLessThanOrEqual(word.length);
  }
  expect(out).toBe(text);
});

test("long runs that are no secret (base64 blobs, hashes, glued words) stream exactly as one-shot scans them", () => {
  let seed = 7;
  const rnd = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed / 0x7fffffff; };
  const pick = (alphabet: string, n: number) => Array.from({ length: n }, () => alphabet[Math.floor(rnd() * alphabet.length)]).join("");
  const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const runs = ["A1b2".repeat(100), "maymayhermaywill".repeat(20), pick("0123456789abcdef", 128), ...Array.from({ length: 12 }, () => pick(B64, 300 + Math.floor(rnd() * 200)))];
  for (const run of runs) {
    const text = `blob: ${run} end`;
    const one = scanner.scan(text).text;
    const f = scanner.filter();
    let out = "", worst = 0;
    for (const ch of text) { out += f.push(ch); worst = Math.max(worst, f.pending); }
    expect({ run: run.slice(0, 16), out: out + f.end() }).toEqual({ run: run.slice(0, 16), out: one });
    // Held at most while the run could still be a host name's first label (63 characters) or an encoded secret
    // (every base64 quad so far printable: these runs fail within a quad or two, read from their real start).
    expect({ run: run.slice(0, 16), over64: worst > 64 }).toEqual({ run: run.slice(0, 16), over64: false });
  }
});

const engine = makeEngine();
afterAll(async () => (await engine).dispose());

test("through the real server: an answer with no spaces streams in many chunks, the first long before the end", async () => {
  const answer = "数据,模型,服务,安全,流式,输出,测试,中文,没有,空格,".repeat(4);
  const ctx = await makeApp({ engine: await engine });
  const base = listenApp(ctx.app);
  const r = await fetch(`${base}/v1/chat/completions`, { method: "POST", headers: { authorization: `Bearer ${ctx.key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny", max_tokens: 400, stream: true, messages: [{ role: "user", content: "say it" }],
      response_format: { type: "json_schema", json_schema: { name: "a", schema: { type: "object", properties: { a: { const: answer } }, required: ["a"] } } } }) });
  const pieces: string[] = [];
  for (const line of (await r.text()).split("\n")) {
    if (!line.startsWith("data: {")) continue;
    const piece = (JSON.parse(line.slice(6)) as { choices: { delta: { content?: string } }[] }).choices[0]?.delta.content;
    if (piece) pieces.push(piece);
  }
  await ctx.app.stop(true);
  const text = pieces.join("");
  expect(text).toContain(answer);
  // The answer has no whitespace (the JSON around it has a little at its start and end): nothing for a hold by
  // words to end on.
  // Before: one chunk (the whole answer held to the end). Now every few characters.
  expect(pieces.length).toBeGreaterThan(30);
  expect(pieces[0]!.length).toBeLessThan(10);
});
