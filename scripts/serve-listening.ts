/** Waiting for a spawned `appliance serve` to listen: shared by the build's bytecode-order run and the tests. */

/**
 * Reads a spawned `appliance serve`'s stdout until its "listening" line, then keeps draining it (so the server
 * never blocks on a full pipe). Returns the port from that line and the output so far (growing).
 */
export async function untilListening(proc: { stdout: ReadableStream<Uint8Array>; stderr: ReadableStream<Uint8Array> }, what = "server") {
  const reader = proc.stdout.getReader();
  const decoder = new TextDecoder();
  let text = "";
  while (!text.includes('"msg":"listening"')) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`${what} exited before listening: ${text}${await new Response(proc.stderr).text()}`);
    text += decoder.decode(value, { stream: true });
  }
  const line = text.split("\n").find((l) => l.includes('"msg":"listening"'))!;
  const port = Number(/"port":(\d+)/.exec(line)![1]);
  void (async () => { for (;;) { const { value, done } = await reader.read(); if (done) return; text += decoder.decode(value, { stream: true }); } })();
  // stderr drained too (what native code prints there: a full pipe would block the server), kept for tests to read
  let errText = "";
  const errReader = proc.stderr.getReader(), errDecoder = new TextDecoder();
  void (async () => { for (;;) { const { value, done } = await errReader.read(); if (done) return; errText += errDecoder.decode(value, { stream: true }); } })();
  return { port, log: () => text, errLog: () => errText };
}
