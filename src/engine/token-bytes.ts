/**
 * The raw bytes a token stands for, read from the vocabulary's own spelling of it: for early release of held text
 * (early-text.ts, through token-tally.ts), and for logprob alternatives and /tokenize pieces whose text alone cannot
 * be told apart (a token holding part of a UTF-8 character detokenizes to U+FFFD, so every byte token read "�").
 */
import type { LlamaModel, Token } from "node-llama-cpp";

const BYTE_TOKEN = /^<0x([0-9A-Fa-f]{2})>$/;
const byteTables = new WeakMap<LlamaModel, ((t: Token) => readonly number[] | undefined) | null>();

/**
 * A token's bytes as the vocabulary spells them: SentencePiece ("llama": byte tokens <0xHH>, control tokens none,
 * ▁ a space) and byte-level BPE ("gpt2"); undefined for other vocabularies (early release then holds every
 * trailing U+FFFD).
 */
export function tokenBytes(model: LlamaModel): ((t: Token) => readonly number[] | undefined) | undefined {
  let table = byteTables.get(model);
  if (table === undefined) {
    table = buildTable(model) ?? null;
    byteTables.set(model, table);
  }
  return table ?? undefined;
}

function buildTable(model: LlamaModel): ((t: Token) => readonly number[] | undefined) | undefined {
  const ggml = (model.fileInfo.metadata as unknown as { tokenizer?: { ggml?: { model?: string; tokens?: readonly string[]; token_type?: readonly number[] } } }).tokenizer?.ggml;
  const pieces = ggml?.tokens, types = ggml?.token_type;
  if (!pieces || !types) return undefined;
  const utf8 = new TextEncoder();
  const cache = new Map<Token, readonly number[] | undefined>();
  let spell: (t: Token) => readonly number[] | undefined;
  if (ggml.model === "llama") {
    spell = (t) => {
      const piece = pieces[t], type = types[t];
      if (piece === undefined) return undefined;
      if (type === 3) return []; // control: no text
      const byte = type === 6 ? BYTE_TOKEN.exec(piece) : null;
      if (type === 6) return byte ? [parseInt(byte[1]!, 16)] : undefined;
      return type === 1 || type === 4 ? [...utf8.encode(piece.replaceAll("\u2581", " "))] : undefined;
    };
  } else if (ggml.model === "gpt2") {
    const byteOf = gpt2Bytes();
    spell = (t) => {
      const piece = pieces[t], type = types[t];
      if (piece === undefined) return undefined;
      if (type === 3) return [];
      if (type === 4) return [...utf8.encode(piece)];
      const out: number[] = [];
      for (const ch of piece) {
        const b = byteOf.get(ch);
        if (b === undefined) return undefined;
        out.push(b);
      }
      return out;
    };
  } else return undefined;
  return (t) => {
    if (!cache.has(t)) cache.set(t, spell(t));
    return cache.get(t);
  };
}

/** GPT-2's byte-level alphabet, character → byte (the inverse of its bytes_to_unicode). */
function gpt2Bytes(): Map<string, number> {
  const map = new Map<string, number>();
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    map.set(String.fromCodePoint(printable ? b : 256 + extra++), b);
  }
  return map;
}

const strict = new TextDecoder("utf-8", { fatal: true });
/** Whether bytes are whole UTF-8 (a token holding part of a character is not). */
export const isUtf8 = (bytes: readonly number[]) => { try { strict.decode(new Uint8Array(bytes)); return true; } catch { return false; } };

/** A token's raw bytes where they are not whole UTF-8 (part of a character); undefined otherwise or unknown. */
export function partialBytes(model: LlamaModel, token: Token): number[] | undefined {
  const raw = tokenBytes(model)?.(token);
  return raw && !isUtf8(raw) ? [...raw] : undefined;
}

/** How OpenAI writes a token that is not whole UTF-8: "bytes:" and each byte as \xNN. */
export const spellBytes = (bytes: readonly number[]) => "bytes:" + bytes.map((b) => `\\x${b.toString(16).padStart(2, "0")}`).join("");
