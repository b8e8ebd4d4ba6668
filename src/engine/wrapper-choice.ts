/**
 * A model's resolved chat wrapper as a few bytes of data, so a start can rebuild it instead of resolving it again.
 *
 * node-llama-cpp's resolveChatWrapper renders the model's Jinja template against every built-in wrapper and each of
 * its option sets (several hundred ms at start, even for a tiny model). Its answer is always one of: a built-in
 * wrapper class made with one of a fixed list of settings (the option sets it tests, or `{}`/a Llama 2 variant on
 * its fallback paths), or a JinjaTemplateChatWrapper of the model's own template. So the answer is remembered as
 * (type name, index into that list) — and only after the rebuilt wrapper was checked to be field for field the one
 * resolved (describeWrapper); anything else is not remembered and every start resolves as before.
 *
 * The answer depends on the model's bytes (template, metadata, tokenizer), the file name node-llama-cpp sees and the
 * node-llama-cpp code; the caller keys what it remembers by the model's sha256 and the build (integrity/hash-cache.ts),
 * and the file name is part of the choice.
 */
import { chatWrappers, isLlamaText, JinjaTemplateChatWrapper, type ChatWrapper, type ResolveChatWrapperOptions } from "node-llama-cpp";

/** A resolved wrapper: `type` is a key of node-llama-cpp's `chatWrappers`; `settings` indexes settingsFor(type). */
export interface WrapperChoice { type: string; settings: number; filename: string | null }

/** A remembered choice to rebuild, and where to report one resolved from scratch (the hash cache, root only). */
export interface WrapperMemory { choice?: WrapperChoice; remember?: (choice: WrapperChoice) => void }

type Options = Pick<ResolveChatWrapperOptions, "filename" | "fileInfo" | "tokenizer">;
type WrapperClass = (new (settings?: object) => ChatWrapper) & { _getOptionConfigurationsToTestIfCanSupersedeJinjaTemplate?: () => unknown[] };

const JINJA = "jinjaTemplate";
const classes = chatWrappers as unknown as Record<string, WrapperClass>;

/**
 * Every settings object resolveChatWrapper constructs `type` with: for each option set it tests against the
 * template, the settings it then applies (a [test, apply, jinja] triple's second element, `{}` when absent), then
 * the plain `{}` of its other paths, and the two Llama 2 variants it picks by the template's text.
 */
function settingsFor(type: string): object[] {
  const tested = classes[type]?._getOptionConfigurationsToTestIfCanSupersedeJinjaTemplate?.() ?? [];
  const applied = tested.map((c) => (Array.isArray(c) ? (c[1] ?? {}) : c ?? {}) as object);
  return [...applied, {}, ...(type === "llama2Chat" ? [{ addSpaceBeforeEos: true }, { addSpaceBeforeEos: false }] : [])];
}

/** The model's own Jinja template (what resolveChatWrapper reads). */
const templateOf = (o: Options) => o.fileInfo?.metadata?.tokenizer?.chat_template;

/** The wrapper a choice stands for; undefined when it does not apply (another file name, an unknown type or index). */
export function rebuildWrapper(choice: WrapperChoice, options: Options): ChatWrapper | undefined {
  if (choice.filename !== (options.filename ?? null)) return undefined;
  if (choice.type === JINJA) {
    const template = templateOf(options);
    // resolveChatWrapper's own construction of it, minus its render cache (a cache, not a setting).
    return choice.settings === 0 && template ? new JinjaTemplateChatWrapper({ tokenizer: options.tokenizer, template }) : undefined;
  }
  const Wrapper = Object.hasOwn(classes, choice.type) ? classes[choice.type] : undefined;
  const settings = Wrapper && settingsFor(choice.type)[choice.settings];
  return settings ? new Wrapper({ ...settings }) : undefined;
}

/**
 * The choice that rebuilds exactly `resolved` (same class, every field equal: settings, texts, flags, functions'
 * code), or undefined when none does (then nothing is remembered). `options`: those it was resolved with.
 */
export function describeWrapper(resolved: ChatWrapper, options: Options): WrapperChoice | undefined {
  const filename = options.filename ?? null;
  const type = Object.keys(classes).find((k) => resolved.constructor === classes[k]);
  if (!type) return undefined;
  const want = fingerprint(resolved);
  if (want === undefined) return undefined;
  const count = type === JINJA ? 1 : settingsFor(type).length;
  for (let settings = 0; settings < count; settings++) {
    const choice = { type, settings, filename };
    let rebuilt: ChatWrapper | undefined;
    try { rebuilt = rebuildWrapper(choice, options); } catch { continue; }
    if (rebuilt && fingerprint(rebuilt) === want) return choice;
  }
  return undefined;
}

/** Nodes a fingerprint may visit (a compiled template is a few thousand); past it the wrapper is not remembered. */
const MAX_NODES = 200_000;

/**
 * Every field of a wrapper, recursively, as text: class names, own enumerable fields in key order, LlamaText as its
 * JSON, dates as ISO text, functions as their code, shared or cyclic objects by their first path. Undefined when
 * too large to compare.
 */
export function fingerprint(value: unknown): string | undefined {
  const seen = new Map<object, number>();
  let nodes = 0;
  const walk = (v: unknown): string => {
    if (++nodes > MAX_NODES) throw new RangeError("too large");
    if (v === null || typeof v !== "object") {
      return typeof v === "function" ? `fn(${String(v)})` : typeof v === "bigint" ? `${v}n` : v === undefined ? "undef" : JSON.stringify(v);
    }
    const id = seen.get(v);
    if (id !== undefined) return `@${id}`;
    seen.set(v, seen.size);
    if (isLlamaText(v)) return `text${JSON.stringify(v.toJSON())}`;
    if (v instanceof Date) return `date(${Number.isNaN(v.getTime()) ? "NaN" : v.toISOString()})`;
    if (Array.isArray(v)) return `[${v.map(walk).join(",")}]`;
    if (v instanceof Map) return `Map[${[...v].map(walk).join(",")}]`;
    if (v instanceof Set) return `Set[${[...v].map(walk).join(",")}]`;
    const name = (v as { constructor?: { name?: string } }).constructor?.name ?? "null";
    return `${name}{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${walk((v as Record<string, unknown>)[k])}`).join(",")}}`;
  };
  try { return walk(value); } catch { return undefined; }
}
