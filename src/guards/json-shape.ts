/**
 * A linear pre-scan of a raw JSON body, before JSON.parse: how deep it nests and
 * how many elements one array or object holds. A 60 KB body of `[` × 30,000
 * parses in microseconds, but every later walk over the value (schema
 * validation, an error message that serialises it) is recursive and, indented,
 * quadratic in depth: seconds of blocked event loop and gigabytes of memory.
 * Real requests nest a handful of levels (tool schemas perhaps a dozen).
 */
import { InvalidRequestError, paramPath } from "../errors";

export class JsonShapeError extends InvalidRequestError {
  /** `param`: JSON text inside a string field (checkEmbeddedJson); none for the body itself. */
  constructor(readonly what: "deep" | "wide", readonly limit: number, param: string | null = null) {
    const named = param && paramPath(param);
    const where = named ? `The JSON text in ${named}` : "The JSON body";
    super(what === "deep" ? `${where} nests deeper than ${limit} levels.` : `A JSON array or object in ${named ?? "the body"} has more than ${limit} elements.`,
      param, what === "deep" ? "json_too_deep" : "json_too_wide");
  }
}

/** The body's bounds (config limits). */
export interface JsonBounds { jsonMaxDepth: number; jsonMaxWidth: number }

/**
 * JSON inside a string field: a tool call's arguments, a tool's result. The body check cannot see into a string,
 * but the engine parses these and walks the value recursively (node-llama-cpp renders it into the prompt), so
 * 80 KB of `[` in a tool result blocked the event loop for seconds, took gigabytes and at ~50,000 levels overflowed
 * the stack (a 500). Same bounds as the body, `param` naming the field. A text that is not JSON (a tool's prose
 * result) is no concern of this: it is never parsed, so brackets in it count for nothing.
 */
export function checkEmbeddedJson(text: string, bounds: JsonBounds, param: string): void {
  try {
    checkJsonShape(text, bounds.jsonMaxDepth, bounds.jsonMaxWidth);
  } catch (e) {
    if (!(e instanceof JsonShapeError)) throw e;
    try { JSON.parse(text); } catch { return; } // not JSON: the engine keeps it as text
    throw new JsonShapeError(e.what, e.limit, param);
  }
}

/**
 * Throws JsonShapeError past either bound (limits.jsonMaxDepth, limits.jsonMaxWidth); one pass, no
 * allocation but the per-level counters.
 */
export function checkJsonShape(raw: string, maxDepth: number, maxWidth: number): void {
  const counts = new Int32Array(maxDepth + 2);
  let depth = 0;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 34) { // a string: skip to its closing quote, stepping over escapes
      for (i++; i < raw.length; i++) {
        const s = raw.charCodeAt(i);
        if (s === 92) i++;
        else if (s === 34) break;
      }
    } else if (c === 91 || c === 123) { // [ {
      if (++depth > maxDepth) throw new JsonShapeError("deep", maxDepth);
      counts[depth] = 0;
    } else if (c === 93 || c === 125) { // ] }
      if (depth > 0) depth--;
    } else if (c === 44 && depth > 0 && ++counts[depth]! >= maxWidth) { // , (n commas = n + 1 elements)
      throw new JsonShapeError("wide", maxWidth);
    }
  }
}

/**
 * Makes the parsed body serialise as a placeholder: a validation error built by
 * the framework stringifies the value it rejected, and no error path should
 * copy (or walk) a whole request. Non-enumerable, so schemas never see it.
 */
export function unserialisable<T>(value: T): T {
  if (value !== null && typeof value === "object") {
    Object.defineProperty(value, "toJSON", { value: () => "[request body]", enumerable: false });
  }
  return value;
}
