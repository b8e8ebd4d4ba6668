/** The gateway's reader of an upstream's server-sent events (server/upstream/sse-events.ts). */
import { expect, test } from "bun:test";
import { UpstreamError } from "../../src/gateway/errors";
import { sseData } from "../../src/server/upstream/sse-events";

async function* pieces(text: string, cuts: number[]): AsyncGenerator<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  let at = 0;
  for (const c of [...cuts, bytes.length]) { yield bytes.subarray(at, c); at = c; }
}
const read = async (src: AsyncIterable<Uint8Array>, max?: number) => { const out: string[] = []; for await (const d of sseData(src, max)) out.push(d); return out; };

test("events cut at every place, with LF and CRLF line ends, read the same", async () => {
  for (const nl of ["\n", "\r\n"]) {
    const text = `: hi${nl}data: {"a":1}${nl}${nl}event: x${nl}data: two${nl}data: lines${nl}${nl}data:three${nl}${nl}`;
    const whole = await read(pieces(text, []));
    expect(whole).toEqual(['{"a":1}', "two\nlines", "three"]);
    for (let i = 1; i < text.length; i++) for (const j of [i + 1, i + 2]) {
      expect(await read(pieces(text, j < text.length ? [i, j] : [i])), JSON.stringify([nl, i, j])).toEqual(whole);
    }
  }
});

// Gateway red-team run: an event that never ended grew the gateway to 1.65 GB, each read searching it all again.
test("an event that grows past the bound without ending is an upstream error", async () => {
  async function* endless(): AsyncGenerator<Uint8Array> {
    yield new TextEncoder().encode('data: {"ok":1}\n\ndata: {"choices":[{"delta":{"content":"');
    const a = new Uint8Array(64 << 10).fill(97);
    for (;;) yield a;
  }
  const got: string[] = [];
  const err = await (async () => { try { for await (const d of sseData(endless(), 4 << 20)) got.push(d); } catch (e) { return e; } })();
  expect(got).toEqual(['{"ok":1}']);
  expect(err).toBeInstanceOf(UpstreamError);
  expect((err as Error).message).toBe("The upstream sent a stream event over 4 MiB.");
});
