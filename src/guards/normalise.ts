/**
 * Text normalisation for matching, shared by the prompt guard and the response
 * scanner: what a reader sees, not how it is encoded. NFKC folds fullwidth and
 * compatibility forms (ｉｇｎｏｒｅ, ①), invisible characters are dropped,
 * look-alike letters (Unicode's confusables) become their Latin letters, and runs of
 * separators (spaces, hyphens, underscores, dots) become one space. One pass per
 * character: linear in the text.
 */

import { CONFUSABLE_DASHES, CONFUSABLE_LETTERS } from "./rules/lookalikes";
import { isHigh } from "./regex-chars";

/**
 * Invisible and direction-changing characters, by Unicode property rather than
 * a hand list: Default_Ignorable_Code_Point (zero-widths, U+034F, U+180B, U+3164,
 * variation selectors FE00–FE0F and E0100–E01EF, tags E0000–E007F …),
 * Bidi_Control (U+061C, U+202A–202E, U+2066–2069 …) and the line/paragraph
 * separators U+2028/U+2029.
 */
export const INVISIBLE_CHAR = /[\p{Default_Ignorable_Code_Point}\p{Bidi_Control}\u2028\u2029]/u;

/**
 * Where invisible characters are legitimate: emoji sequences (ZWJ between
 * pictographs, a variation selector after one, keycaps, tag-spelled subdivision
 * flags; that one first, its black flag is a pictograph too). The flags are the
 * three Unicode recommends (England, Scotland, Wales: gbeng, gbsct, gbwls): any
 * tag text once passed inside a 🏴 … U+E007F wrapper, and then any text split
 * into pieces of 3-6 tag letters, each wrapped as a flag of "valid" shape
 * (hidden instructions to a model that reads tag characters). The prompt guard
 * skips these and refuses everything else.
 */
export const EMOJI_SEQUENCE = String.raw`\u{1F3F4}\u{E0067}\u{E0062}(?:\u{E0065}\u{E006E}\u{E0067}|\u{E0073}\u{E0063}\u{E0074}|\u{E0077}\u{E006C}\u{E0073})\u{E007F}|\p{Extended_Pictographic}[\u{1F3FB}-\u{1F3FF}]?[\uFE0E\uFE0F]?(?:\u200D\p{Extended_Pictographic}[\u{1F3FB}-\u{1F3FF}]?[\uFE0E\uFE0F]?)*|[0-9#*]\uFE0F?\u20E3`;

/** A letter (`kinds`; not a format character such as ALM, which those scripts also list) of one of the scripts. */
const letterOf = (scripts: string[], kinds = String.raw`\p{L}`) =>
  String.raw`(?:(?=[${kinds}])[${scripts.map((s) => String.raw`\p{scx=${s}}`).join("")}])`;
/** Scripts whose spelling uses ZWNJ and ZWJ between letters: the Arabic-script and joining ones, the Brahmic ones. */
const JOINING = letterOf(["Arabic", "Syriac", "Nko", "Mongolian", "Devanagari", "Bengali", "Gurmukhi", "Gujarati", "Oriya", "Tamil",
  "Telugu", "Kannada", "Malayalam", "Sinhala", "Tibetan", "Myanmar", "Khmer"]);
/** Letters and digits of right-to-left scripts, whose text carries the implicit direction marks LRM, RLM and ALM. */
const RTL = letterOf(["Hebrew", "Arabic", "Syriac", "Thaana", "Nko", "Samaritan", "Mandaic", "Adlam"], String.raw`\p{L}\p{Nd}`);
const MARK = String.raw`[\u200E\u200F\u061C]`;

/**
 * Where invisible characters are ordinary writing, one at a time (the prompt guard skips these too; two in a row are
 * still refused): ZWNJ or ZWJ after a letter of a script that spells with them, before another of its letters or marks
 * or where the word ends (Persian می‌خواهم, Sinhala ශ්‍රී, Malayalam's chillu അവന്‍ വന്നു); LRM, RLM or ALM where a
 * right-to-left letter or digit meets something else (שלום‏!, ۱۲‏; not between two of them, where it changes nothing
 * and would carry bits); a soft hyphen between two letters (words copied from web pages). They were refused as
 * invisible text, so ordinary Persian, Hebrew and Indic text got a 400. Not: variation selectors after ideographs
 * (one of 256 after each character carries a byte of hidden text, a known way to smuggle instructions to a model),
 * joiners between Latin letters, zero-width spaces, the bidi embeddings, overrides and isolates (Trojan Source), tag
 * characters.
 */
export const WRITING_SEQUENCE = String.raw`(?<=${JOINING}\p{M}*)[\u200C\u200D](?=${JOINING}|\p{M}|[^\p{L}\p{Cf}]|$)` +
  String.raw`|(?<=${RTL}\p{M}*)${MARK}(?!${RTL})|(?<!${RTL}\p{M}*|${MARK})${MARK}(?=${RTL})|(?<=\p{L}\p{M}*)\u00AD(?=\p{L})`;

/**
 * Look-alikes → the ASCII letter they imitate, in both cases (the response scanner matches case-sensitive key
 * prefixes such as AKIA and BEGIN): every character Unicode's confusables data lists for an ASCII letter
 * (rules/lookalikes.ts: Cyrillic, Greek, Armenian, Cherokee, Lisu, Coptic, Canadian syllabics, small capitals …), with
 * the hand-made table below over it, and dashes → "-" (PEM armor: CONFUSABLE_DASHES). The prompt guard looks letters up after
 * lower-casing, so each one's lower case is in too.
 */
export const LOOKALIKES: Readonly<Record<string, string>> = withConfusables({
  "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t", "у": "y", "х": "x",
  "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d", "ԛ": "q", "ԝ": "w", "һ": "h", "ӏ": "l", "ɡ": "g", "ɩ": "i", "ʏ": "y",
  "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "γ": "y",
  "ı": "i", "ȷ": "j", "ℓ": "l", "օ": "o", "ս": "u", "հ": "h", "ո": "n", "ѵ": "v", "ү": "y", "ϲ": "c", "ϳ": "j",
  "А": "A", "В": "B", "Е": "E", "Ё": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T", "У": "Y", "Х": "X",
  "Ѕ": "S", "І": "I", "Ї": "I", "Ј": "J", "Ԛ": "Q", "Ԝ": "W", "Ӏ": "I", "Ү": "Y",
  "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
  "Օ": "O", "Ս": "U", "Ѵ": "V", "Ϲ": "C", "Ϳ": "J",
  // Latin small capitals, which Unicode's confusables data lists with no ASCII letter: read as the lower-case letter.
  ...Object.fromEntries([..."ᴀʙᴄᴅᴇꜰɢʜɪᴊᴋʟᴍɴᴏᴘʀꜱᴛᴜᴠᴡʏᴢ"].map((ch, i) => [ch, "abcdefghijklmnoprstuvwyz"[i]!])),
  // Dashes: Unicode's confusables of "-" and the dash punctuation (rules/lookalikes.ts; ˗ ➖ Ⲻ wrote a PEM armor unread).
  ...Object.fromEntries([...CONFUSABLE_DASHES].map((ch) => [ch, "-"])),
});

/** The confusables under the hand-made table; each character's lower case too (for the prompt guard). */
function withConfusables(own: Record<string, string>): Record<string, string> {
  const all: Record<string, string> = {};
  for (const [letter, chars] of Object.entries(CONFUSABLE_LETTERS)) {
    for (const ch of chars) {
      all[ch] ??= letter;
      const lower = ch.toLowerCase();
      if (lower !== ch && !/^[\x00-\x7f]+$/.test(lower.normalize("NFKC"))) all[lower] ??= letter.toLowerCase();
    }
  }
  return Object.assign(all, own);
}

/** Look-alikes whose NFKC form is another character (ϲ → ς, Ϲ → Σ), mapped before normalising. */
const NFKC_CHANGES = new RegExp(`[${Object.keys(LOOKALIKES).filter((ch) => ch.normalize("NFKC") !== ch).join("")}]`, "gu");
const foldBeforeNfkc = (text: string) => text.replace(NFKC_CHANGES, (ch) => LOOKALIKES[ch]!);

/** Separators folded to one space: whitespace, hyphens/dashes, underscores, dots, middle dots, slashes, pipes. */
const SEPARATOR = /[\s\p{Pd}_.·•|/\\*~^]/u;

/** ASCII separators by code, so plain text never reaches a regex per character. */
const ASCII_SEPARATOR = new Uint8Array(128);
for (const c of " \t\n\r\v\f-_.|/\\*~^") ASCII_SEPARATOR[c.charCodeAt(0)] = 1;
const NON_ASCII = /[^\x00-\x7f]/;

/** Nonspacing and enclosing marks (accents, a circle drawn around the letter before). */
const LONE_MARK = /^[\p{Mn}\p{Me}]$/u;
const ACCENTED = /^\P{Mn}\p{Mn}+$/u;
/**
 * Each non-ASCII character's accentless form, worked out once ("" for a mark alone); bounded, as text is the client's.
 * The prompt guard's skeleton and the response scanner's view (scan-view.ts) read letters through it.
 */
const ACCENTLESS = new Map<string, string>();
export function accentless(ch: string): string {
  let f = ACCENTLESS.get(ch);
  if (f !== undefined) return f;
  const d = ch.normalize("NFD");
  f = LONE_MARK.test(ch) ? "" : d !== ch && ACCENTED.test(d) ? d.replace(/\p{Mn}/gu, "") : ch;
  if (ACCENTLESS.size < 8192) ACCENTLESS.set(ch, f);
  return f;
}

/**
 * The matching form of `text`: NFKC, invisibles and accents dropped, look-alikes mapped, lower case, separators
 * folded.
 */
export function skeleton(text: string): string {
  // Look-alikes NFKC would turn into another letter first (lunate sigma ϲ → σ) are mapped before it. Accents go, per
  // character (NFD of the whole text doubled the time for non-ASCII text): `i\u0301gnore previous instructions` (í)
  // passed the phrase rules unflagged (attack on the fixes); a look-alike with a mark (Cyrillic ё) reads as its base's.
  const folded = (NON_ASCII.test(text) ? foldBeforeNfkc(text).normalize("NFKC") : text).toLowerCase();
  let out = "", run = 0; // run: start of the current stretch of plain characters, copied in one slice
  let space = false;
  const flush = (i: number) => { if (i > run) { if (space) { out += " "; space = false; } out += folded.slice(run, i); } };
  for (let i = 0; i < folded.length; i++) {
    const c = folded.charCodeAt(i);
    if (c < 128) {
      if (ASCII_SEPARATOR[c]) { flush(i); run = i + 1; space = true; }
      continue;
    }
    flush(i);
    const size = isHigh(c) ? 2 : 1;
    const ch = folded.slice(i, i + size);
    run = i + size;
    i += size - 1;
    if (INVISIBLE_CHAR.test(ch)) continue;
    let like = LOOKALIKES[ch], base = ch;
    // Accented letters and marks are all below U+3000 (CJK and Hangul above it have none to drop).
    if (like === undefined && c < 0x3000) { base = accentless(ch); if (!base) continue; like = LOOKALIKES[base]; }
    if (like === "-" || SEPARATOR.test(base)) { space = true; continue; }
    if (space) { out += " "; space = false; }
    out += like ?? base;
  }
  flush(folded.length);
  return space ? out + " " : out;
}
