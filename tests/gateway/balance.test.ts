/**
 * Least-in-flight balancing, seen from two upstreams that hold each stream open
 * until the test releases it: a new request goes to the upstream with fewer
 * requests in flight (not simply the next in turn), and idle upstreams share
 * sequential requests.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chatChunk, recordingUpstream, startGateway, type GatewayApp } from "./gateway-helpers";

/** An upstream whose streams send their first chunk, then wait for release(). */
function holdingUpstream() {
  const releases: (() => void)[] = [];
  const u = recordingUpstream((_req, s) => {
    if (s.path.endsWith("/models")) return Response.json({ data: [] });
    const enc = new TextEncoder();
    let release!: () => void;
    const held = new Promise<void>((r) => { release = r; });
    releases.push(release);
    return new Response(new ReadableStream({
      async start(c) {
        c.enqueue(enc.encode(`data: ${JSON.stringify(chatChunk({ role: "assistant", content: "x" }))}\n\n`));
        await held;
        c.enqueue(enc.encode(`data: ${JSON.stringify(chatChunk({}, "stop"))}\n\ndata: [DONE]\n\n`));
        c.close();
      },
    }), { headers: { "content-type": "text/event-stream" } });
  });
  return { ...u, releases, chats: () => u.seen.filter((s) => s.path.endsWith("/chat/completions")).length };
}

const a = holdingUpstream(), b = holdingUpstream();
let gw: GatewayApp;
beforeAll(async () => {
  gw = await startGateway({ upstreams: [{ url: a.url, models: ["m"] }, { url: b.url, models: ["m"] }], gateway: { retries: 0, healthIntervalMs: 0 } } as never);
});
afterAll(async () => { await gw.close(); a.stop(); b.stop(); });

/** Opens a stream through the gateway and reads its first event (the upstream has taken it). */
async function open() {
  const res = await fetch(`${gw.baseURL}/v1/chat/completions`, {
    method: "POST", headers: { authorization: `Bearer ${gw.key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }], stream: true }),
  });
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  await reader.read();
  return { finish: async () => { while (!(await reader.read()).done) { /* drain to [DONE] */ } } };
}

test("a request goes to the upstream with the fewest in flight; idle ones take turns", async () => {
  const first = await open();
  const [busy, idle] = a.chats() === 1 ? [a, b] : [b, a];
  expect(busy.chats()).toBe(1);

  const second = await open();
  expect(idle.chats()).toBe(1); // least in flight: the idle one
  idle.releases.shift()!();
  await second.finish();

  // busy still holds one: least-in-flight sends the next two to idle again (round robin would alternate)
  for (let i = 0; i < 2; i++) {
    const s = await open();
    expect(idle.chats()).toBe(2 + i);
    idle.releases.shift()!();
    await s.finish();
  }
  expect(busy.chats()).toBe(1);
  busy.releases.shift()!();
  await first.finish();

  // both idle: sequential requests alternate
  const before = [a.chats(), b.chats()];
  for (let i = 0; i < 4; i++) {
    const s = await open();
    (a.releases.shift() ?? b.releases.shift())!();
    await s.finish();
  }
  expect([a.chats() - before[0]!, b.chats() - before[1]!]).toEqual([2, 2]);
});
