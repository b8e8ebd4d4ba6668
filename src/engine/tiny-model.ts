/**
 * Writes a deterministic tiny random-weight llama-architecture GGUF.
 *
 * No model can be downloaded where this project is built, so tests and the demo
 * run on this: the output is gibberish, but loading, tokenizing (SentencePiece
 * with byte fallback), the ChatML template, sampling, grammars, embeddings and
 * streaming all go through the real llama.cpp code paths.
 */
import { GgufType, writeGguf, type KvValue, type TensorSpec } from "./gguf-writer";

export interface TinyModelOptions {
  layers: number; embd: number; heads: number; ff: number; ctx: number; seed: number;
}

export const TINY_DEFAULTS: TinyModelOptions = { layers: 2, embd: 64, heads: 4, ff: 128, ctx: 2048, seed: 42 };

/** Another model family's look: its chat template and the control tokens that template uses (e.g. `<think>`). */
export interface TinyModelLook { template?: string; controlTokens?: readonly string[] }

/** ChatML, as llama.cpp and node-llama-cpp recognise it. */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const SP = "\u2581"; // SentencePiece's word-boundary marker
const WORDS = ("the of and to in is you that it he was for on are as with his they at be this have from or one had by " +
  "word but not what all were we when your can said there use an each which she do how their if will up other about out " +
  "many then them these so some her would make like him into time has look two more write go see number no way could " +
  "people my than first water been call who oil its now find long down day did get come made may part hello world json " +
  "key value true false null name answer model server test").split(" ");

/** Token types as GGUF defines them. */
const NORMAL = 1, UNKNOWN = 2, CONTROL = 3, BYTE = 6;

function buildVocab(controlTokens: readonly string[]) {
  const tokens: string[] = [], scores: number[] = [], types: number[] = [];
  const add = (t: string, score: number, type: number) => { tokens.push(t); scores.push(score); types.push(type); };
  add("<unk>", 0, UNKNOWN);
  add("<s>", 0, CONTROL);
  add("</s>", 0, CONTROL);
  for (let b = 0; b < 256; b++) add(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`, 0, BYTE);
  add("<|im_start|>", 0, CONTROL);
  add("<|im_end|>", 0, CONTROL);
  for (const t of controlTokens) add(t, 0, CONTROL);
  // Single characters score lowest so the SentencePiece merge prefers whole words.
  const chars = new Set<string>([SP]);
  for (let c = 32; c < 127; c++) if (c !== 32) chars.add(String.fromCharCode(c));
  for (const c of chars) add(c, -1000, NORMAL);
  for (const c of "abcdefghijklmnopqrstuvwxyz0123456789") add(SP + c, -900, NORMAL);
  WORDS.forEach((w, i) => { add(SP + w, -10 - i, NORMAL); add(w, -500 - i, NORMAL); });
  // Dedupe while keeping first occurrence (a word may equal a single char).
  const seen = new Set<string>();
  const keep = tokens.map((t) => (seen.has(t) ? false : (seen.add(t), true)));
  return {
    tokens: tokens.filter((_, i) => keep[i]),
    scores: scores.filter((_, i) => keep[i]),
    types: types.filter((_, i) => keep[i]),
  };
}

/**
 * The ids of the vocabulary's word-start tokens ("▁the", "▁a", …: a space, then a word or a character), for a
 * logit_bias that makes the random model write words separated by spaces, as real text is (scripts/bench-peer.ts:
 * what the response scanner's hold-back costs on such text; on the model's own output, long runs with no space, it
 * holds each run until it ends). `look`: the one the model was made with (its control tokens come before these).
 */
export function wordStartTokenIds(look: TinyModelLook = {}): number[] {
  return buildVocab(look.controlTokens ?? []).tokens.flatMap((t, id) => (t.startsWith(SP) && t.length > 1 ? [id] : []));
}

/** mulberry32: small, fast and the same on every machine. */
function rng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export async function makeTinyModel(out: string, opts: Partial<TinyModelOptions> = {}, look: TinyModelLook = {}): Promise<{ bytes: number; params: number }> {
  const o = { ...TINY_DEFAULTS, ...opts };
  if (o.embd % o.heads !== 0) throw new Error(`--embd (${o.embd}) must be a multiple of --heads (${o.heads})`);
  const vocab = buildVocab(look.controlTokens ?? []);
  const nVocab = vocab.tokens.length;
  const imEnd = vocab.tokens.indexOf("<|im_end|>");
  const rand = rng(o.seed);
  const scale = 1 / Math.sqrt(o.embd);
  const random = (out: Float32Array) => { for (let i = 0; i < out.length; i++) out[i] = (rand() * 2 - 1) * scale; };
  const ones = (out: Float32Array) => out.fill(1);

  const kv: Record<string, KvValue> = {
    "general.architecture": { type: GgufType.STRING, value: "llama" },
    "general.name": { type: GgufType.STRING, value: `appliance-tiny-${o.layers}x${o.embd}` },
    "general.file_type": { type: GgufType.UINT32, value: 0 },
    "general.alignment": { type: GgufType.UINT32, value: 32 },
    "llama.context_length": { type: GgufType.UINT32, value: o.ctx },
    "llama.embedding_length": { type: GgufType.UINT32, value: o.embd },
    "llama.block_count": { type: GgufType.UINT32, value: o.layers },
    "llama.feed_forward_length": { type: GgufType.UINT32, value: o.ff },
    "llama.attention.head_count": { type: GgufType.UINT32, value: o.heads },
    "llama.attention.head_count_kv": { type: GgufType.UINT32, value: o.heads },
    "llama.rope.dimension_count": { type: GgufType.UINT32, value: o.embd / o.heads },
    "llama.attention.layer_norm_rms_epsilon": { type: GgufType.FLOAT32, value: 1e-5 },
    "llama.vocab_size": { type: GgufType.UINT32, value: nVocab },
    "tokenizer.ggml.model": { type: GgufType.STRING, value: "llama" },
    "tokenizer.ggml.tokens": { type: GgufType.ARRAY, itemType: GgufType.STRING, value: vocab.tokens },
    "tokenizer.ggml.scores": { type: GgufType.ARRAY, itemType: GgufType.FLOAT32, value: vocab.scores },
    "tokenizer.ggml.token_type": { type: GgufType.ARRAY, itemType: GgufType.INT32, value: vocab.types },
    "tokenizer.ggml.bos_token_id": { type: GgufType.UINT32, value: 1 },
    "tokenizer.ggml.eos_token_id": { type: GgufType.UINT32, value: imEnd },
    "tokenizer.ggml.unknown_token_id": { type: GgufType.UINT32, value: 0 },
    "tokenizer.ggml.add_bos_token": { type: GgufType.BOOL, value: true },
    "tokenizer.ggml.add_eos_token": { type: GgufType.BOOL, value: false },
    "tokenizer.chat_template": { type: GgufType.STRING, value: look.template ?? CHATML_TEMPLATE },
  };

  const tensors: TensorSpec[] = [
    { name: "token_embd.weight", dims: [o.embd, nVocab], fill: random },
    { name: "output_norm.weight", dims: [o.embd], fill: ones },
    { name: "output.weight", dims: [o.embd, nVocab], fill: random },
  ];
  for (let l = 0; l < o.layers; l++) {
    const p = `blk.${l}.`;
    tensors.push(
      { name: p + "attn_norm.weight", dims: [o.embd], fill: ones },
      { name: p + "attn_q.weight", dims: [o.embd, o.embd], fill: random },
      { name: p + "attn_k.weight", dims: [o.embd, o.embd], fill: random },
      { name: p + "attn_v.weight", dims: [o.embd, o.embd], fill: random },
      { name: p + "attn_output.weight", dims: [o.embd, o.embd], fill: random },
      { name: p + "ffn_norm.weight", dims: [o.embd], fill: ones },
      { name: p + "ffn_gate.weight", dims: [o.embd, o.ff], fill: random },
      { name: p + "ffn_up.weight", dims: [o.embd, o.ff], fill: random },
      { name: p + "ffn_down.weight", dims: [o.ff, o.embd], fill: random },
    );
  }
  const params = tensors.reduce((n, t) => n + t.dims.reduce((a, b) => a * b, 1), 0);
  const bytes = await writeGguf(out, kv, tensors);
  return { bytes, params };
}
