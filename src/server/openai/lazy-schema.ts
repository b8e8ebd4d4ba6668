/**
 * A zod schema built at its first use instead of at program load.
 *
 * The wire schemas are handed to Elysia at route registration, which keeps only their Standard Schema side
 * (`"~standard" in schema`, `schema["~standard"]`) and calls `validate` per request. Building them all when the
 * program loads cost 12-25 ms of every cold start (zod 4 instances are costly to construct while its code is still
 * cold; scripts/bench-cold.ts). The stand-in answers those two questions without building; its `validate` builds
 * the schema at the first request and hands every call to the real schema's own `~standard.validate`, so results
 * and error issues are the real schema's. Any other use (zod's own functions, the docs page's toJSONSchema,
 * `.shape`, `.parse`) builds it and reads the real schema, so it behaves as the schema itself.
 */

/** The first request that validates against a schema pays its construction (ms, measured on this VM: 2-10). */
export function lazySchema<T extends object>(build: () => T): T {
  let real: T | undefined;
  const schema = () => real ??= build();
  const standard = {
    version: 1 as const,
    vendor: "zod",
    validate: (value: unknown) => (schema() as { "~standard": { validate: (v: unknown) => unknown } })["~standard"].validate(value),
  };
  return new Proxy({} as T, {
    get: (_, key) => key === "~standard" && real === undefined ? standard : Reflect.get(schema(), key),
    has: (_, key) => key === "~standard" || Reflect.has(schema(), key),
    getPrototypeOf: () => Reflect.getPrototypeOf(schema()),
  });
}
