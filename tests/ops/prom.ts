/**
 * Prometheus exposition read the way Prometheus reads it: through the official client's parser (prom_parse.py,
 * prometheus_client.parser from Debian's python3-prometheus-client), which refuses malformed text.
 */
import { expect } from "bun:test";
import path from "node:path";

export interface Sample { family: string; type: string; name: string; labels: Record<string, string>; value: number | string }

/** Parses exposition text; throws with the parser's message when it refuses it. */
export async function parseExposition(text: string): Promise<Sample[]> {
  const p = Bun.spawn(["/usr/bin/python3", path.join(import.meta.dir, "prom_parse.py")], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  p.stdin.write(text);
  await p.stdin.end();
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`the Prometheus parser refused the exposition: ${err}`);
  return JSON.parse(out);
}

/** GET /metrics with `key`, checked (200, text/plain) and parsed. */
export async function scrapeMetrics(baseURL: string, key: string): Promise<Sample[]> {
  const r = await fetch(baseURL + "/metrics", { headers: { authorization: `Bearer ${key}` } });
  expect(r.status).toBe(200);
  expect(r.headers.get("content-type")).toStartWith("text/plain");
  return parseExposition(await r.text());
}

export const matches = (s: Sample, name: string, labels: Record<string, string>) =>
  s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v);

/** The sum of every sample of `name` with these labels (0 when none). */
export const value = (ss: Sample[], name: string, labels: Record<string, string> = {}) =>
  ss.filter((s) => matches(s, name, labels)).reduce((n, s) => n + Number(s.value), 0);

/** Whether the exposition has a sample called `name`. */
export const has = (ss: Sample[], name: string) => ss.some((s) => s.name === name);
