/**
 * The raw bytes a token stands for, read from the vocabulary's own spelling of it, for logprob alternatives whose
 * text alone cannot be told apart: a token holding part of a UTF-8 character detokenizes to U+FFFD, so every byte
 * token read "�" (bytes [239,191,189]) and a completions `top_logprobs` object kept only one of them. SentencePiece
 * vocabularies spell such tokens `<0xC3>` and a space `▁`; byte-level BPE ones (GPT-2's) spell each byte as one
 * printable character. Other vocabularies: none (their text is used as it is).
 */
import type { LlamaModel, Token } from "node-llama-cpp";

const encoder = new TextEncoder();

/** GPT-2's printable stand-in for each byte (its bytes_to_unicode), inverted: code point → byte. */
function byteLevelChars(): Map<number, number> {
  const map = new Map<number, number>();
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    map.set(printable ? b : 256 + extra++, b);
  }
  return map;
}

const read = new WeakMap<LlamaModel, (token: Token) => number[] | undefined>();

/** One model's reader (made once per model); undefined for a token where the vocabulary is neither kind. */
export function tokenBytes(model: LlamaModel): (token: Token) => number[] | undefined {
  let r = read.get(model);
  if (!r) read.set(model, r = reader(model));
  return r;
}

function reader(model: LlamaModel): (token: Token) => number[] | undefined {
  const ggml = (model.fileInfo.metadata as unknown as { tokenizer?: { ggml?: { model?: string; tokens?: string[] } } }).tokenizer?.ggml;
  const tokens = ggml?.tokens;
  if (!tokens) return () => undefined;
  if (ggml.model === "llama") {
    return (t) => {
      const s = tokens[t];
      if (s === undefined) return undefined;
      const byte = /^<0x([0-9A-Fa-f]{2})>$/.exec(s);
      return byte ? [parseInt(byte[1]!, 16)] : [...encoder.encode(s.replaceAll("\u2581", " "))];
    };
  }
  if (ggml.model === "gpt2") {
    const chars = byteLevelChars();
    return (t) => {
      const s = tokens[t];
      if (s === undefined) return undefined;
      const out: number[] = [];
      for (const ch of s) {
        const b = chars.get(ch.codePointAt(0)!);
        if (b === undefined) return undefined; // not byte-level text (an added token): its text is used
        out.push(b);
      }
      return out;
    };
  }
  return () => undefined;
}

const strict = new TextDecoder("utf-8", { fatal: true });
/** Whether bytes are whole UTF-8 (a token holding part of a character is not). */
export const isUtf8 = (bytes: readonly number[]) => { try { strict.decode(new Uint8Array(bytes)); return true; } catch { return false; } };

/** How OpenAI writes a token that is not whole UTF-8: "bytes:" and each byte as \xNN. */
export const spellBytes = (bytes: readonly number[]) => "bytes:" + bytes.map((b) => `\\x${b.toString(16).padStart(2, "0")}`).join("");
