/**
 * The Lua scripts that keep token buckets and concurrency slots in Redis. Each runs atomically in
 * Redis, so two instances can never both take the last token or the last slot. Time is Redis's own
 * clock (TIME), so instances whose clocks disagree still refill one bucket at one rate.
 *
 * The bucket arithmetic is the memory store's (rate-limit.ts Bucket), field for field: level refills
 * at rate/60000 per ms up to capacity; a request takes 1; a token reservation is taken up front and
 * settled later; a request larger than the whole bucket runs when the bucket is full and pays the debt.
 * A bucket hash holds two buckets: q* (requests) and k* (tokens): r rate, c capacity, l level, t last.
 */

const COMMON = `
if redis.replicate_commands then pcall(redis.replicate_commands) end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function load(key, p, rate, cap, now)
  if rate <= 0 then return nil end
  local v = redis.call('HMGET', key, p..'r', p..'c', p..'l', p..'t')
  local b = { p = p, rate = rate, cap = cap, level = cap, t = now }
  if v[1] and v[2] and v[3] and v[4] then
    local last = tonumber(v[4])
    local dt = now - last
    if dt < 0 then dt = 0 end
    -- Refilled at the rate it was saved with, then at most this instance's capacity and the saved one: an instance
    -- with other limits (a rolling config change) carries the level over. It used to start a full bucket, so two
    -- instances with different rpm refilled each other's bucket at every request and the limit never held.
    b.level = math.min(cap, tonumber(v[2]), tonumber(v[3]) + dt * tonumber(v[1]) / 60000)
    if last > now then b.t = last end
  end
  return b
end
local function ms_until(b, need)
  if b.level >= need then return 0 end
  return math.ceil((need - b.level) * 60000 / b.rate)
end
local function save(key, b)
  if not b then return 0 end
  redis.call('HSET', key, b.p..'r', b.rate, b.p..'c', b.cap, b.p..'l', string.format('%.17g', b.level), b.p..'t', b.t)
  return ms_until(b, b.cap)
end
local function expire(key, ms)
  -- the hash is dropped once every bucket in it would be full again: a full bucket and no bucket are the same
  ms = math.floor(ms) + 1000
  if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, ms) end
end
local function headers(q, k)
  local h = { -1, 0, -1, 0 }
  if q then h[1] = math.max(0, math.floor(q.level)); h[2] = ms_until(q, q.cap) end
  if k then h[3] = math.max(0, math.floor(k.level)); h[4] = ms_until(k, k.cap) end
  return h
end
`;

/**
 * KEYS: bucket hash. ARGV: rpm, request capacity, tpm, token capacity, tokens to reserve.
 * → { status (0 ok, 1 requests exhausted, 2 tokens exhausted), retry ms, req remaining, req reset ms, tok remaining, tok reset ms }
 */
export const ADMIT = COMMON + `
local key = KEYS[1]
local now = now_ms()
local q = load(key, 'q', tonumber(ARGV[1]), tonumber(ARGV[2]), now)
local k = load(key, 'k', tonumber(ARGV[3]), tonumber(ARGV[4]), now)
local reserve = tonumber(ARGV[5])
local status, retry = 0, 0
if q and q.level < 1 then
  status = 1; retry = ms_until(q, 1)
else
  if q then q.level = q.level - 1 end
  if k then
    local full = k.level >= k.cap
    local ok
    if reserve > 0 then ok = full or k.level >= reserve else ok = math.floor(k.level) > 0 end
    if ok then
      k.level = k.level - reserve
    else
      status = 2
      if q then q.level = q.level + 1 end
      retry = ms_until(k, math.min(math.max(1, reserve), k.cap))
    end
  end
end
expire(key, math.max(save(key, q), save(key, k)))
local h = headers(q, k)
return { status, retry, h[1], h[2], h[3], h[4] }
`;

/** KEYS: bucket hash. ARGV: tpm, token capacity, tokens to charge (negative refunds). → 1 */
export const CHARGE = COMMON + `
local key = KEYS[1]
local k = load(key, 'k', tonumber(ARGV[1]), tonumber(ARGV[2]), now_ms())
if not k then return 0 end
k.level = k.level - tonumber(ARGV[3])
expire(key, save(key, k))
return 1
`;

/** KEYS: bucket hash. ARGV: rpm, request capacity. → ms until one request is allowed when the bucket is empty, else -1. Writes nothing. */
export const EXHAUSTED = COMMON + `
local key = KEYS[1]
if redis.call('EXISTS', key) == 0 then return -1 end
local q = load(KEYS[1], 'q', tonumber(ARGV[1]), tonumber(ARGV[2]), now_ms())
if not q or math.floor(q.level) >= 1 then return -1 end
return ms_until(q, 1)
`;

/**
 * Concurrency slots: a sorted set of holders scored by when their lease ends; expired holders are
 * dropped before counting, so a dead instance's slots come back after one lease.
 * KEYS: slot set, bucket hash (for the refusal's headers). ARGV: max, holder, lease ms, rpm, rcap, tpm, tcap.
 * → { 0 } taken, or { 1, req remaining, req reset ms, tok remaining, tok reset ms } refused.
 */
export const ENTER = COMMON + `
local set = KEYS[1]
local now = now_ms()
local max = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', set, '-inf', now)
if redis.call('ZCARD', set) >= max then
  local h = headers(load(KEYS[2], 'q', tonumber(ARGV[4]), tonumber(ARGV[5]), now), load(KEYS[2], 'k', tonumber(ARGV[6]), tonumber(ARGV[7]), now))
  return { 1, h[1], h[2], h[3], h[4] }
end
local lease = tonumber(ARGV[3])
redis.call('ZADD', set, now + lease, ARGV[2])
if redis.call('PTTL', set) < lease then redis.call('PEXPIRE', set, lease) end
return { 0 }
`;

/** KEYS: slot set. ARGV: lease ms, holders... → renews the holders still present (never re-adds one). */
export const RENEW = COMMON + `
local set = KEYS[1]
local until_ms = now_ms() + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', set, 'XX', until_ms, ARGV[i]) end
redis.call('PEXPIRE', set, tonumber(ARGV[1]))
return 1
`;
