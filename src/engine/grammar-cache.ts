/**
 * JSON-schema grammars built once per schema, not once per generation. Building one runs on the event loop
 * (node-llama-cpp's schema-to-GBNF conversion, then llama.cpp parsing the GBNF): a 245 KB enum schema took ~0.85 s,
 * and a request with n choices built it n times, every other stream stalled meanwhile (red team: 12.8 s of /health
 * waits for one n=16 request). A grammar is immutable once built (each generation evaluates it with its own state;
 * node-llama-cpp shares its own "json" grammar the same way), so the last few distinct schemas are kept, keyed by
 * their JSON text; a schema that fails to build is not kept.
 */
import type { Llama, LlamaGrammar } from "node-llama-cpp";
import { jsonSchemaGrammar } from "./grammar";

/** Distinct schemas kept: a client's few response formats and tool sets stay built. */
const KEEP = 16;

export class GrammarCache {
  private readonly built = new Map<string, Promise<LlamaGrammar>>();

  constructor(private readonly llama: Llama, private readonly keep = KEEP) {}

  get(schema: Record<string, unknown>): Promise<LlamaGrammar> {
    const key = JSON.stringify(schema);
    const hit = this.built.get(key);
    if (hit) {
      this.built.delete(key); // most recently used last
      this.built.set(key, hit);
      return hit;
    }
    const made = jsonSchemaGrammar(this.llama, schema);
    this.built.set(key, made);
    made.catch(() => this.built.delete(key));
    while (this.built.size > this.keep) this.built.delete(this.built.keys().next().value!);
    return made;
  }
}
