/**
 * Issue 11 item 6 (start path): the response scanner's analysis of its rules' patterns (5-10 ms) is not built when
 * the guards are, on serve's way to listening, but when a stream first holds text back or when serve, once ready,
 * calls prepare() (server/listen.ts). What it answers does not depend on when it was built.
 */
import { expect, spyOn, test } from "bun:test";
import { parseConfig } from "../../src/config/load";
import * as prefix from "../../src/guards/regex-prefix";
import { createScanner } from "../../src/guards/response-scan";

const cfg = parseConfig({}).responseScan;
const secret = "sk-proj-" + "Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8Qr9St0Uv";

/** The text a filter lets out for `pieces`, pushed one by one, then ended. */
function streamed(scanner: ReturnType<typeof createScanner>, pieces: string[]): string {
  const f = scanner.filter();
  return pieces.map((p) => f.push(p)).join("") + f.end();
}

test("building the scanner analyses no pattern; the first held stream does, once", () => {
  const analysed = spyOn(prefix, "analysePattern");
  try {
    const scanner = createScanner(cfg);
    expect(analysed).not.toHaveBeenCalled();
    const out = streamed(scanner, ["the key is ", secret.slice(0, 12), secret.slice(12), " ok"]);
    expect(out).not.toContain(secret.slice(8));
    expect(out).toContain("[REDACTED:");
    const calls = analysed.mock.calls.length;
    expect(calls).toBeGreaterThan(0);
    streamed(scanner, ["again ", secret, "."]);
    expect(analysed.mock.calls.length).toBe(calls); // built once per scanner, not per stream
  } finally {
    analysed.mockRestore();
  }
});

test("prepare() builds it ahead; a prepared scanner answers exactly as a lazy one", () => {
  const analysed = spyOn(prefix, "analysePattern");
  try {
    const prepared = createScanner(cfg);
    prepared.prepare();
    const calls = analysed.mock.calls.length;
    expect(calls).toBeGreaterThan(0);
    prepared.prepare();
    expect(analysed.mock.calls.length).toBe(calls);
    const pieces = ["host db1.corp", ".internal and ", secret.slice(0, 5), secret.slice(5), " end"];
    expect(streamed(prepared, pieces)).toBe(streamed(createScanner(cfg), pieces));
    expect(analysed.mock.calls.length).toBe(calls * 2); // the lazy one built its own, at its first held push
  } finally {
    analysed.mockRestore();
  }
});
