/**
 * The log's secret redaction, compiled once: what pino's own `redact` option did for our paths, without its cost.
 *
 * Why not pino's: its redactor (@pinojs/redact, pino 10) parses every path again on every call and runs once per
 * top-level field of every line (a `*.` path makes it the stringifier of every field), then clones what it censors.
 * Profiled on `GET /v1/models` under 8 clients (one request log line each): ~17 µs of each request's ~170 µs of
 * CPU was that redaction (2026-12-07). Here the paths are read once into three sets and a line that carries none of
 * them costs one pass over its top-level fields and over the fields of those that are objects.
 *
 * Paths understood (the only shapes the logger uses; anything else throws at start): `name` (a top-level field),
 * `*.name` (a field of any top-level object), `parent.name` and `parent["name"]` (a field of that one top-level
 * object). Output is what pino's redaction wrote: a top-level field is censored when its value is not undefined; a
 * field one level down when it is the object's own (whatever its value); deeper fields, arrays' items and other
 * values are left alone. Nothing the caller passed is changed: a censored object is a copy with the same prototype
 * and property descriptors (an Error stays an Error for pino's `err` serializer, which runs after this). One
 * difference: a top-level value with a toJSON method (a Headers object, a Buffer) is judged by what toJSON gives,
 * which is what the line shows; pino's redaction wrote such values as "[unable to serialize, circular reference is
 * too complex to analyze]".
 */
export function secretRedactor(paths: readonly string[], censor: string): <T extends object>(obj: T) => T {
  const top = new Set<string>(), anyChild = new Set<string>(), under = new Map<string, Set<string>>();
  for (const p of paths) {
    const m = /^(\*|[A-Za-z_$][\w$-]*)(?:\.([A-Za-z_$][\w$-]*)|\["([^"\]]+)"\])?$/.exec(p);
    if (!m) throw new Error(`log redaction: unsupported path ${JSON.stringify(p)}`);
    const [, first, dotted, quoted] = m;
    const child = dotted ?? quoted;
    if (child === undefined) {
      if (first === "*") throw new Error(`log redaction: unsupported path ${JSON.stringify(p)}`);
      top.add(first!);
    } else if (first === "*") anyChild.add(child);
    else {
      if (!under.has(first!)) under.set(first!, new Set());
      under.get(first!)!.add(child);
    }
  }
  // A toJSON that throws: the value is left as it is (serialising it then fails or not as it did with pino's redaction).
  const shownBy = (v: { toJSON(): unknown }) => { try { return v.toJSON(); } catch { return undefined; } };
  const copy = (v: object) => Object.create(Object.getPrototypeOf(v), Object.getOwnPropertyDescriptors(v)) as Record<string, unknown>;
  const censored = (v: object, names: Set<string> | undefined): Record<string, unknown> | undefined => {
    let out: Record<string, unknown> | undefined;
    for (const c in v) {
      if ((anyChild.has(c) || names?.has(c)) && Object.prototype.hasOwnProperty.call(v, c)) (out ??= copy(v))[c] = censor;
    }
    return out;
  };
  return <T extends object>(obj: T): T => {
    let out: Record<string, unknown> | undefined;
    const src = obj as Record<string, unknown>;
    for (const k in src) {
      if (!Object.prototype.hasOwnProperty.call(src, k)) continue;
      const v = src[k];
      if (v === undefined) continue;
      if (top.has(k)) { (out ??= { ...src })[k] = censor; continue; }
      // Arrays' items and typed arrays' indices were never redacted (and a large buffer is not walked).
      if (v === null || typeof v !== "object" || Array.isArray(v) || ArrayBuffer.isView(v)) continue;
      // What will be written is what toJSON gives (a Headers object: its fields, authorization among them).
      const shown = typeof (v as { toJSON?: unknown }).toJSON === "function" ? shownBy(v as { toJSON(): unknown }) : v;
      if (shown === null || typeof shown !== "object" || Array.isArray(shown)) continue;
      const inner = censored(shown, under.get(k));
      if (inner) (out ??= { ...src })[k] = inner;
    }
    return (out ?? obj) as T;
  };
}
