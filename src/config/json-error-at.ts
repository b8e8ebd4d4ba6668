/**
 * Where a JSON text stops being JSON, as "line L, column C" (1-based): Bun's JSON.parse says what is wrong ("Property
 * name must be a string literal") but not where, which in a config file of a hundred lines is the part that matters.
 * A small strict reader (RFC 8259: no comments, no trailing commas) run only after JSON.parse has failed; undefined
 * when it finds nothing wrong (then the parse error alone is shown).
 */
export function jsonErrorAt(text: string): string | undefined {
  let i = 0;
  const fail = (): never => { throw i; };
  const blank = () => { while (i < text.length && " \t\n\r".includes(text[i]!)) i++; };
  const literal = (word: string) => { if (text.startsWith(word, i)) i += word.length; else fail(); };
  const string = () => {
    if (text[i] !== '"') fail();
    for (i++; i < text.length; i++) {
      const c = text[i]!;
      if (c === '"') { i++; return; }
      if (c < " ") fail();
      if (c === "\\") {
        const e = text[++i];
        if (e === "u") { if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) fail(); i += 4; }
        else if (e === undefined || !'"\\/bfnrt'.includes(e)) fail();
      }
    }
    fail();
  };
  const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y; // sticky: matched in place, however long
  const number = () => {
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (!m) fail();
    i += m![0].length;
  };
  // One loop, no recursion: neither deep nesting nor a long list can overflow the stack. `open`: the containers
  // still open, innermost last; `want`: a value, an object's key, or what may follow a value.
  const open: ("{" | "[")[] = [];
  const walk = () => {
    let want: "value" | "key" | "after" = "value";
    for (;;) {
      blank();
      if (want === "value") {
        const c = text[i];
        if (c === "{" || c === "[") {
          i++;
          blank();
          if (text[i] === (c === "{" ? "}" : "]")) { i++; want = "after"; continue; }
          open.push(c);
          want = c === "{" ? "key" : "value";
          continue;
        }
        if (c === '"') string();
        else if (c === "t") literal("true");
        else if (c === "f") literal("false");
        else if (c === "n") literal("null");
        else number();
        want = "after";
      } else if (want === "key") {
        string();
        blank();
        if (text[i] !== ":") fail();
        i++;
        want = "value";
      } else {
        const top = open.at(-1);
        if (!top) { if (i < text.length) fail(); return; }
        if (text[i] === ",") { i++; want = top === "{" ? "key" : "value"; continue; }
        if (text[i] !== (top === "{" ? "}" : "]")) fail();
        i++;
        open.pop();
      }
    }
  };
  try {
    walk();
    return undefined;
  } catch (at) {
    if (typeof at !== "number") throw at;
    const before = text.slice(0, at);
    const line = before.split("\n").length;
    return `line ${line}, column ${at - before.lastIndexOf("\n")}`;
  }
}
