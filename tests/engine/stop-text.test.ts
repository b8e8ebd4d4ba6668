/** stopText: text goes out up to the first stop string; what may still become one is held; the end is called once. */
import { expect, test } from "bun:test";
import { stopText } from "../../src/engine/stop-text";

function run(stops: string[], chunks: string[], tail = "") {
  const out: string[] = [];
  let ends = 0;
  const s = stopText(stops, (t) => out.push(t), () => ends++);
  for (const c of chunks) s.push(c);
  s.finish(tail);
  return { out, text: s.text(), stopped: s.stopped, ends };
}

test("a stop split across chunks: the text before it, nothing after, the end called once", () => {
  expect(run(["User:"], ["Hello ", "Us", "er: more", "late"])).toEqual({ out: ["Hello "], text: "Hello ", stopped: true, ends: 1 });
});

test("a held start that turns out not to be a stop goes out with what follows", () => {
  expect(run(["abc"], ["xa", "b", "d"])).toEqual({ out: ["x", "abd"], text: "xabd", stopped: false, ends: 0 });
});

test("the first stop in the text wins, whichever is listed first; an overlapping start is still found", () => {
  expect(run(["zz", "b"], ["aab zz"]).text).toBe("aa");
  expect(run(["aab"], ["a", "a", "ab"]).text).toBe("a"); // "aaab": the stop begins at the second "a"
});

test("held text goes out when the generation ends without a stop; a stop in the tail still cuts", () => {
  expect(run(["\n\n"], ["one\n"])).toEqual({ out: ["one", "\n"], text: "one\n", stopped: false, ends: 0 });
  expect(run(["\t"], ["{"], "\n\t\t")).toEqual({ out: ["{", "\n"], text: "{\n", stopped: true, ends: 1 });
});

test("no stops: every chunk goes out as it comes", () => {
  expect(run([], ["a", "b"])).toEqual({ out: ["a", "b"], text: "ab", stopped: false, ends: 0 });
});
