/**
 * The log's secret redaction, compiled once: what pino's own `redact` option did for our paths, without its cost.
 *
 * Why not pino's: its redactor (@pinojs/redact, pino 10) parses every path again on every call and runs once per
 * top-level field of every line (a `*.` path makes it the stringifier of every field), then clones what it censors.
 * Profiled on `GET /v1/models` under 8 clients (one request log line each): ~17 µs of each request's ~170 µs of
 * CPU was that redaction (2026-12-07). Here the paths are read once into sets, and a value is probed for the few
 * names that can be secrets rather than walked.
 *
 * Paths understood (the only shapes the logger uses; anything else throws at start): `name` (a top-level field),
 * `*.name` (a field of any top-level value), `parent.name` and `parent["name"]` (a field of that one top-level value).
 * Applied by logger.ts to a line's fields, to the objects a message interpolates or is, and to a child's bindings,
 * as pino's option was. What is censored is what that line shows: a top-level field that is not undefined; one
 * level down, a field the value's JSON shows (its own enumerable fields; a toJSON's output, which is what is
 * written — a Headers object's authorization; an Error's fields as pino's err serializer copies them, inherited
 * enumerable ones too, not its toJSON). Deeper fields are left alone, as they were. Nothing the caller passed is
 * changed or has a setter called: a censored value is a fresh copy (same prototype; an Error keeps its name,
 * message, stack and cause), so frozen objects, getters and read-only fields log too.
 */
export function secretRedactor(paths: readonly string[], censor: string): <T>(obj: T) => T {
  const top: string[] = [], anyChild: string[] = [], under = new Map<string, string[]>();
  for (const p of paths) {
    const m = /^(\*|[A-Za-z_$][\w$-]*)(?:\.([A-Za-z_$][\w$-]*)|\["([^"\]]+)"\])?$/.exec(p);
    if (!m) throw new Error(`log redaction: unsupported path ${JSON.stringify(p)}`);
    const [, first, dotted, quoted] = m;
    const child = dotted ?? quoted;
    if (child === undefined) {
      if (first === "*") throw new Error(`log redaction: unsupported path ${JSON.stringify(p)}`);
      top.push(first!);
    } else if (first === "*") anyChild.push(child);
    else under.set(first!, [...(under.get(first!) ?? []), child]);
  }
  const own = (o: object, k: string) => Object.prototype.propertyIsEnumerable.call(o, k);
  const define = (o: object, k: string, value: unknown, enumerable = true) =>
    Object.defineProperty(o, k, { value, enumerable, writable: true, configurable: true });
  /** A copy of what `v` shows (fields by value, an Error's own texts too) with `hit` censored. */
  const copyOf = (v: object, hit: string[], isError: boolean) => {
    const out = Object.create(Object.getPrototypeOf(v)) as object;
    const field = (k: string) => (v as Record<string, unknown>)[k];
    if (!isError) for (const k of Object.keys(v)) define(out, k, field(k));
    else {
      // Every field the err serializer will visit, read here from the Error itself: a host error's fields are getters
      // on its prototype that work only on a real instance (DOMException), so the copy must not fall through to them.
      for (const k in v) define(out, k, field(k));
      for (const k of ["name", "message", "stack", "cause"]) if (k in v && !enumerableIn(v, k)) define(out, k, field(k), false);
    }
    for (const k of hit) define(out, k, censor);
    return out;
  };
  // A toJSON that throws: the value is left as it is (serialising it then fails or not as it did with pino's redaction).
  const shownBy = (v: { toJSON(): unknown }) => { try { return v.toJSON(); } catch { return undefined; } };
  /** `v` (a top-level value) with the secret fields it shows censored, or undefined when it shows none. */
  const censored = (v: object, names: readonly string[]): object | undefined => {
    const isError = v instanceof Error;
    // pino's err serializer copies an Error's enumerable fields, inherited ones too, and ignores its toJSON.
    if (isError) {
      const hit = names.filter((k) => k in v && (v as unknown as Record<string, unknown>)[k] !== undefined && enumerableIn(v, k));
      return hit.length ? copyOf(v, hit, true) : undefined;
    }
    const shown = typeof (v as { toJSON?: unknown }).toJSON === "function" ? shownBy(v as { toJSON(): unknown }) : v;
    if (shown === null || typeof shown !== "object") return undefined;
    if (Array.isArray(shown)) return undefined; // its items are two levels down
    const hit = names.filter((k) => own(shown, k));
    return hit.length ? copyOf(shown, hit, false) : undefined;
  };
  const all = (k: string) => { const u = under.get(k); return u ? [...anyChild, ...u] : anyChild; };
  return <T>(obj: T): T => {
    if (obj === null || typeof obj !== "object") return obj;
    const src = obj as Record<string, unknown>;
    let out: Record<string, unknown> | undefined;
    const set = (k: string, value: unknown) => { out ??= (Array.isArray(src) ? [...src] : { ...src }) as Record<string, unknown>; define(out, k, value); };
    for (const k of top) if (own(src, k) && src[k] !== undefined) set(k, censor);
    for (const k in src) {
      if (!own(src, k) || top.includes(k)) continue;
      const v = src[k];
      if (v === null || typeof v !== "object") continue;
      const c = censored(v, all(k));
      if (c) set(k, c);
    }
    return (out ?? obj) as T;
  };
}

/** Whether a for…in over `o` (what pino's err serializer does) visits `k`: enumerable on `o` or on its prototype chain. */
function enumerableIn(o: object, k: string): boolean {
  for (let p: object | null = o; p; p = Object.getPrototypeOf(p)) {
    const d = Object.getOwnPropertyDescriptor(p, k);
    if (d) return !!d.enumerable;
  }
  return false;
}
