/**
 * What util/huge-pages.ts should decide on this machine, as the tests see it: where the decision is measured (a VM
 * that reports freed memory to its host: fault-probe.ts), a second measurement here can land on the other side only
 * where the two page sizes cost about the same, so the tests expect an exact choice only where it is clear (huge
 * pages 4× cheaper, or dearer); undefined: either choice is right.
 */
import { measureFaultCost } from "../../src/util/fault-probe";
import { readThpMode, reportsFreePages } from "../../src/util/huge-pages";

export function expectedHugePages(): boolean | undefined {
  const thp = readThpMode();
  if (process.platform !== "linux" || (thp !== "always" && thp !== "madvise")) return false;
  if (!reportsFreePages()) return true;
  const cost = measureFaultCost();
  if (!cost) return false;
  if (cost.hugeMs * 4 < cost.smallMs) return true;
  if (cost.hugeMs > cost.smallMs) return false;
  return undefined;
}
