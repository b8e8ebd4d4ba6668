/**
 * Server-sent events from an upstream, as the `data` of each event (multi-line
 * data joined by "\n"; comments, `event:`/`id:` lines and empty events skipped).
 * Accepts \n and \r\n line ends and events split across any chunk boundary.
 */
export async function* sseData(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buf = "";
  const parse = (block: string): string | undefined => {
    const data: string[] = [];
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith("data:")) data.push(line.slice(line[5] === " " ? 6 : 5));
    }
    return data.length ? data.join("\n") : undefined;
  };
  for await (const chunk of chunks) {
    buf += decoder.decode(chunk, { stream: true });
    for (;;) {
      const m = /\r?\n\r?\n/.exec(buf);
      if (!m) break;
      const block = buf.slice(0, m.index);
      buf = buf.slice(m.index + m[0].length);
      const data = parse(block);
      if (data !== undefined) yield data;
    }
  }
  buf += decoder.decode();
  const data = parse(buf);
  if (data !== undefined && buf.trim()) yield data;
}
