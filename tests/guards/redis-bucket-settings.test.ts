/**
 * One shared bucket, two instances whose limits differ (a rolling config change, or two deployments on one Redis
 * with one prefix): a shared-limits run had each instance start the other's bucket full again, so 12 requests
 * alternating between rpm 3 and rpm 4 all passed, and the failed-auth throttle never answered 429. The ADMIT script
 * run in a real redis-server, as the instances run it.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { RedisClient } from "bun";
import { ADMIT } from "../../src/guards/store/lua";
import { redisMissing, startRedis, type RedisServer } from "./redis-server";

const skip = redisMissing("tests/guards/redis-bucket-settings.test.ts");
let redis: RedisServer, client: RedisClient;
beforeAll(async () => { if (skip) return; redis = await startRedis(); client = new RedisClient(redis.url); await client.connect(); }, 60_000);
afterAll(async () => { if (skip) return; client?.close(); await redis?.kill(); });

/** ADMIT one request against bucket `key` with this instance's rpm (capacity = rpm, no token limit): its status, 0 = admitted. */
const admit = async (key: string, rpm: number) => Number(((await client.send("EVAL", [ADMIT, "1", key, String(rpm), String(rpm), "0", "0", "0"])) as unknown[])[0]);

test.skipIf(skip)("an instance with other limits carries the shared bucket's level over: the budget used is not given back", async () => {
  expect([await admit("b1", 3), await admit("b1", 3), await admit("b1", 3), await admit("b1", 3)]).toEqual([0, 0, 0, 1]);
  const alternating: number[] = [];
  for (let i = 0; i < 6; i++) alternating.push(await admit("b1", i % 2 ? 3 : 4));
  expect(alternating).toEqual([1, 1, 1, 1, 1, 1]); // was all 0: each side refilled the bucket to its own capacity
  // A bucket saved with a smaller capacity is not topped up to a larger one at once either.
  expect([await admit("b2", 2), await admit("b2", 2), await admit("b2", 5)]).toEqual([0, 0, 1]);
});
