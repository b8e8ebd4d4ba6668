/**
 * Key revocations shared through Redis: a set of revoked key ids plus a version counter bumped on
 * every change. `keys revoke` writes there (besides the keys file), and every server also copies the
 * revocations it reads in its own keys file there. A server re-reads the version when its copy is
 * older than maxAgeMs (on the request path, one GET; the set only when the version moved), so a key
 * revoked on one instance is refused by all within maxAgeMs plus one Redis round trip.
 */
import { SharedStateUnavailableError } from "./limiter";
import type { RedisConn } from "./redis-conn";

/** How old the revocation list may be when a request is judged (the issue asks for ≤ 1 s). */
export const REVOCATION_MAX_AGE_MS = 500;

export class SharedRevocations {
  private revoked = new Set<string>();
  private version: string | null = null;
  private syncedAt = -Infinity;
  private syncing: Promise<void> | undefined;
  /**
   * Times the shared list was found gone (the version read back as none after one was seen: Redis restarted empty,
   * or was flushed). Each instance then publishes its own keys file's revocations again (guards/index.ts), as the
   * README says; it did so only when its keys file changed, so a key revoked before the restart was accepted again
   * by every instance whose copy of the file did not mark it.
   */
  lost = 0;
  /** This instance put ids on the shared list: a list found empty afterwards was lost, whatever version it had read. */
  private published = false;

  constructor(private readonly o: {
    conn: RedisConn; prefix: string; policy: "local" | "refuse"; clock: () => number; maxAgeMs?: number;
  }) {}

  private get setKey() { return `${this.o.prefix}revoked`; }
  private get versionKey() { return `${this.o.prefix}revoked:version`; }

  /** Whether the key id was revoked on any instance. Under policy "local" a Redis outage answers from the last copy. */
  async isRevoked(id: string): Promise<boolean> {
    if (this.o.clock() - this.syncedAt > (this.o.maxAgeMs ?? REVOCATION_MAX_AGE_MS)) {
      try {
        await (this.syncing ??= this.sync().finally(() => { this.syncing = undefined; }));
      } catch {
        this.o.conn.noteFallback("key revocations", this.o.policy === "refuse");
        if (this.o.policy === "refuse") throw new SharedStateUnavailableError();
      }
    }
    return this.revoked.has(id);
  }

  /** From the last copy read, without asking Redis: for what is answered during an outage under "refuse" (/metrics, /ready). */
  lastKnown(id: string): boolean {
    return this.revoked.has(id);
  }

  private async sync() {
    const version = (await this.o.conn.send("GET", [this.versionKey])) as string | null;
    if (version === null && (this.version !== null || this.published)) this.lost++;
    if (version !== this.version) {
      const ids = (await this.o.conn.send("SMEMBERS", [this.setKey])) as string[];
      this.revoked = new Set(ids);
      this.version = version;
    }
    this.syncedAt = this.o.clock();
  }

  /**
   * Adds key ids to the shared list (idempotent; the version moves only when one is new). With nothing new, a version
   * key that is gone is made again (SET NX, a fresh number: no instance's last-read version): with the set kept and
   * only the version lost, every sync read the list as lost again and every instance published at every request.
   */
  async publish(ids: readonly string[]): Promise<void> {
    if (!ids.length) return;
    const added = Number(await this.o.conn.send("SADD", [this.setKey, ...ids]));
    if (added > 0) await this.o.conn.send("INCR", [this.versionKey]);
    else await this.o.conn.send("SET", [this.versionKey, String(Date.now()), "NX"]);
    for (const id of ids) this.revoked.add(id);
    this.published = true;
  }
}

/**
 * `keys revoke` with store "redis": puts every key id the keys file marks revoked on the shared list,
 * so instances with their own copy of the file refuse it too. Returns an error message, or undefined.
 */
export async function shareRevocations(conn: RedisConn, prefix: string, ids: readonly string[]): Promise<string | undefined> {
  try {
    await new SharedRevocations({ conn, prefix, policy: "refuse", clock: Date.now }).publish(ids);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  } finally {
    conn.close();
  }
}
