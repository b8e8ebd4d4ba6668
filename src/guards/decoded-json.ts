/**
 * A JSON text as a chat template renders it: parsed and written out again, so `\u003c|im_start|\u003e` reads as the
 * control token it stands for and `\u202e` as the override. Earlier calls' arguments were read as sent, escapes and
 * all, while the template wrote them decoded (red-team run). Not JSON: the text as it is.
 */
export function decodedJson(text: string): string {
  // Written out again as JSON.stringify writes it (as node-llama-cpp renders a call's parameters): `/` and every
  // character plainly, but a tab or a newline as `\t`/`\n`, as the prompt then holds them.
  if (!text.includes("\\")) return text; // nothing escaped: read as sent (`\/` too: `<\/s>` is `</s>`, attack on the fix)
  try { return JSON.stringify(JSON.parse(text)); } catch { return text; }
}
