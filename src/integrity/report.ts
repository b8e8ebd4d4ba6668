/** The shared shape of `verify` and `doctor`: named checks, a ✓/✗/? table or JSON, and an exit code. */
export type CheckStatus = "ok" | "fail" | "unknown" | "skip";
export interface Check { name: string; status: CheckStatus; detail: string }

const MARK: Record<CheckStatus, string> = { ok: "✓", fail: "✗", unknown: "?", skip: "-" };

export function formatTable(title: string, checks: Check[]): string {
  const width = Math.max(...checks.map((c) => c.name.length), 10);
  const rows = checks.map((c) => `${MARK[c.status]} ${c.name.padEnd(width)}  ${c.detail}`);
  const failed = checks.filter((c) => c.status === "fail").length;
  return `${title}\n${rows.join("\n")}\n${failed ? `${failed} check(s) failed` : "all checks passed"}`;
}

export const exitCodeFor = (checks: Check[]) => (checks.some((c) => c.status === "fail") ? 1 : 0);
