/**
 * The log's secret redaction (src/log/redact.ts) in place of pino's `redact` option: every line the logger writes is
 * the line pino's own redaction wrote for the same paths (differential, over the shapes the paths name and the ones
 * they must leave alone), and the caller's objects are not changed. (What it saves: scripts/bench-log.ts.)
 */
import { describe, expect, test } from "bun:test";
import pino from "pino";
import { CENSOR, REDACT, createLogger } from "../../src/log/logger";
import { secretRedactor } from "../../src/log/redact";

/** Collects the lines a logger writes, each without its timestamp (the two loggers write at different moments). */
function sink() {
  const lines: string[] = [];
  return { lines, dest: { write: (s: string) => { lines.push(s.replace(/"time":"[^"]*",/, "")); return true; } } };
}

/** pino as the logger was configured before: its own `redact` option over the same paths. */
const pinoRedacting = (dest: { write: (s: string) => boolean }) =>
  pino({ level: "debug", base: { app: "appliance" }, redact: { paths: REDACT, censor: CENSOR }, timestamp: pino.stdTimeFunctions.isoTime }, dest as never);

const withKey = () => Object.assign(new Error("boom"), { key: "sk-error-prop", code: "E_X" });
const SAMPLES: [string, () => Record<string, unknown>][] = [
  ["top-level fields", () => ({ authorization: "Bearer sk-1", key: "sk-2", secret: "s3", apiKey: "sk-4", other: "kept" })],
  ["top-level values of every type", () => ({ key: null, secret: 0, apiKey: false, authorization: { nested: "x" } })],
  ["an undefined top-level field is left out, as before", () => ({ key: undefined, other: 1 })],
  ["headers: authorization and x-api-key", () => ({ headers: { authorization: "Bearer sk-5", "x-api-key": "sk-6", accept: "*/*" } })],
  ["one level down under any field", () => ({ req: { key: "sk-7", secret: "s8", apiKey: "sk-9", authorization: "a", path: "/v1/models" } })],
  ["one level down, an undefined own field is censored too, as before", () => ({ req: { key: undefined, path: "/x" } })],
  ["deeper levels and arrays are left alone, as before", () => ({ cfg: { inner: { key: "deep" } }, list: [{ key: "in-array" }], s: "key" })],
  ["an Error with a secret field stays an Error for pino's err serializer", () => ({ err: withKey() })],
  ["nothing to redact", () => ({ model: "tiny", status: 200, ms: 1.5, path: "/v1/models", tags: ["a", "b"] })],
  ["x-api-key elsewhere is not a path", () => ({ req: { "x-api-key": "sk-10" } })],
  // Review (helper-126) of the first version: each of these leaked, threw or changed the caller's object.
  ["a getter one level down", () => ({ req: { get key() { return "sk-11"; }, path: "/p" } })],
  ["a frozen object one level down", () => ({ cfg: Object.freeze({ apiKey: "sk-12", n: 1 }) })],
  ["a read-only field one level down", () => ({ cfg: Object.defineProperty({ n: 1 }, "secret", { value: "sk-13", enumerable: true }) })],
  ["a typed array with a field of its own", () => ({ data: Object.assign(new Uint8Array(2), { key: "sk-14" }) })],
  ["an Error whose toJSON hides its secret field (pino's err serializer ignores toJSON)", () => ({ err: new HidingError("boom") })],
  ["an Error with an inherited enumerable secret field", () => ({ err: new InheritingError("boom") })],
  ["a DOMException with a secret field (its fields are prototype getters)", () => ({ err: Object.assign(new DOMException("dom"), { key: "sk-15" }) })],
];
class HidingError extends Error { key = "sk-16"; toJSON() { return { message: this.message }; } }
class InheritingError extends Error {}
(InheritingError.prototype as unknown as Record<string, unknown>).apiKey = "sk-17";

describe("log redaction", () => {
  test("every line is the line pino's own redaction wrote, for every shape the paths name or leave alone", () => {
    const mine = sink(), theirs = sink();
    const a = createLogger("debug", mine.dest as never), b = pinoRedacting(theirs.dest);
    // The same object to both (neither changes it): an Error's stack names where it was made.
    for (const [what, make] of SAMPLES) {
      const obj = make();
      a.info(obj, what);
      b.info(obj, what);
    }
    const err = withKey();
    a.error(err, "an Error as the first argument");
    b.error(err, "an Error as the first argument");
    a.child({ key: "sk-bound", traceId: "t1" }).warn({ secret: "s" }, "a child's bindings");
    b.child({ key: "sk-bound", traceId: "t1" }).warn({ secret: "s" }, "a child's bindings");
    a.child({ traceId: "t2" }).child({ req: { authorization: "sk-grand" } }).info("a grandchild's bindings");
    b.child({ traceId: "t2" }).child({ req: { authorization: "sk-grand" } }).info("a grandchild's bindings");
    // What a message interpolates or is: pino's redaction covered those objects too.
    for (const log of [a, b]) {
      log.info("req %j", { authorization: "Bearer sk-20", headers: { "x-api-key": "sk-21" }, req: { key: "sk-22" } });
      log.info("req %o and %O", { apiKey: "sk-23" }, { secret: "sk-24" });
      (log.info as (...a: unknown[]) => void)({ a: 1 }, { key: "sk-25" }, "an object then a message");
      log.info(null, { secret: "sk-26" } as never);
      log.error(new HidingError("as the first argument"));
      const c = log.child({ traceId: "t3" });
      c.setBindings({ apiKey: "sk-27", req: { authorization: "sk-28" } });
      c.info("bindings set later");
    }
    expect(mine.lines.length).toBe(SAMPLES.length + 3 + 6);
    for (let i = 0; i < mine.lines.length; i++) expect(mine.lines[i]).toBe(theirs.lines[i]!);
    // And the censoring did happen (not both loggers writing secrets alike).
    const all = mine.lines.join("");
    for (const secret of ["sk-1", "sk-2", "sk-5", "sk-6", "sk-7", "sk-9", "sk-error-prop", "sk-bound", "sk-grand", ...Array.from({ length: 18 }, (_, i) => `sk-${i + 11}`)]) expect(all).not.toMatch(new RegExp(`${secret}(?![\\w-])`)); // in a message's JSON too
    expect(all).toContain('"deep"');
  });

  test("a value with toJSON is judged by what it shows: a Headers object's authorization is censored, a buffer and a date written as they are", () => {
    const { lines, dest } = sink();
    const at = new Date(0);
    createLogger("info", dest as never).info({ headers: new Headers({ authorization: "Bearer sk-h", accept: "*/*" }), buf: Buffer.from("secret"), at }, "line");
    // pino's redaction wrote the first two as "[unable to serialize, circular reference is too complex to analyze]".
    expect(JSON.parse(lines[0]!)).toMatchObject({ headers: { authorization: CENSOR, accept: "*/*" }, buf: { type: "Buffer", data: [...Buffer.from("secret")] }, at: at.toJSON() });
  });

  test("a toJSON that throws does not throw from the redaction: the value is left to serialisation, as before", () => {
    const bad = { toJSON() { throw new Error("no"); }, key: "sk-x" };
    const redact = secretRedactor(REDACT, CENSOR);
    const obj = { v: bad, n: 1 };
    expect(redact(obj)).toBe(obj);
  });

  test("a setter on the caller's object is never called (the censored value is a copy)", () => {
    const { dest } = sink();
    const shared = { k: "sk-orig" };
    const req = { get key() { return shared.k; }, set key(v: string) { shared.k = v; }, path: "/p" };
    createLogger("info", dest as never).info({ req }, "line");
    expect(shared.k).toBe("sk-orig");
  });

  test("the caller's objects are not changed", () => {
    const { dest } = sink();
    const log = createLogger("info", dest as never);
    const err = withKey();
    const obj = { key: "sk-1", req: { authorization: "a", path: "/p" }, headers: { "x-api-key": "k" }, err };
    const before = JSON.stringify({ ...obj, err: { ...err } });
    log.info(obj, "line");
    expect(JSON.stringify({ ...obj, err: { ...err } })).toBe(before);
    expect(obj.err).toBe(err);
    expect(err.key).toBe("sk-error-prop");
  });

  test("a path of another shape is refused when the redactor is made", () => {
    for (const p of ["a.b.c", "*", "a[0]", "*.*", ""]) expect(() => secretRedactor([p], CENSOR)).toThrow(/unsupported path/);
  });
});
