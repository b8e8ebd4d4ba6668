/**
 * A JSON text as a chat template renders it: parsed and written out again, so `\u003c|im_start|\u003e` reads as the
 * control token it stands for and `\u202e` as the override. Earlier calls' arguments were read as sent, escapes and
 * all, while the template wrote them decoded (red-team run). Not JSON: the text as it is.
 */
export function decodedJson(text: string): string {
  if (!text.includes("\\u")) return text; // nothing escaped that JSON.stringify would write plainly: read as sent
  try { return JSON.stringify(JSON.parse(text)); } catch { return text; }
}
