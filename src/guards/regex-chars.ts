/**
 * Sets of characters given as regex atoms (a literal, an escape, a class, `.`), for the response scanner's
 * hold-back analysis (regex-prefix.ts): which characters some atom of a pattern reads. Tested per code unit in
 * a tight loop, so ASCII is a table lookup; any other character is tested against the atoms once and remembered.
 */

/** Most non-ASCII answers remembered per set: a text of many distinct characters cannot grow it without bound. */
const REMEMBERED = 4096;

/**
 * The characters any of a list of atoms reads. A class, not closures: the hold-back loop calls `has` on the sets
 * of every rule from one call site, which stays fast only while it sees one function.
 */
export class CharSet {
  private readonly ascii = new Uint8Array(128);
  private readonly any: RegExp;
  private readonly unicode: boolean;
  private readonly seen = new Map<number, boolean>();

  /** `atoms`: regex sources; `flags`: the pattern's (case-insensitivity and unicode mode matter). */
  constructor(atoms: string[], flags: string) {
    const used = flags.replace(/[gy]/g, "");
    this.unicode = /[uv]/.test(used);
    this.any = atoms.length ? new RegExp(`^(?:${atoms.join("|")})$`, used) : /(?!)/;
    for (let c = 0; c < 128; c++) this.ascii[c] = this.any.test(String.fromCharCode(c)) ? 1 : 0;
  }

  /** Whether the character at `i` (a code unit; in unicode mode a surrogate with its pair) is in the set. */
  has(text: string, i: number): boolean {
    const c = text.charCodeAt(i);
    return c < 128 ? this.ascii[c] === 1 : this.other(text, i, c);
  }

  private other(text: string, i: number, c: number): boolean {
    // In unicode mode an atom reads a surrogate pair as one character; a lone surrogate (or any, outside unicode
    // mode) alone. Either reading counts: a wider set only means a longer search, never a missed match.
    if (this.unicode && c >= 0xd800 && c <= 0xdfff) {
      const pair = surrogatePair(text, i);
      return this.any.test(text[i]!) || (pair !== undefined && this.any.test(pair));
    }
    let m = this.seen.get(c);
    if (m === undefined) {
      if (this.seen.size >= REMEMBERED) this.seen.clear();
      m = this.any.test(String.fromCharCode(c));
      this.seen.set(c, m);
    }
    return m;
  }
}

/** Whether a UTF-16 code unit is the first (high) or second (low) half of a surrogate pair. */
export const isHigh = (c: number) => c >= 0xd800 && c <= 0xdbff, isLow = (c: number) => c >= 0xdc00 && c <= 0xdfff;

/** The surrogate pair the code unit at `i` is half of, if it is. */
function surrogatePair(text: string, i: number): string | undefined {
  const c = text.charCodeAt(i);
  if (c <= 0xdbff) return isLow(text.charCodeAt(i + 1)) ? text.slice(i, i + 2) : undefined;
  return isHigh(text.charCodeAt(i - 1)) ? text.slice(i - 1, i + 1) : undefined;
}
