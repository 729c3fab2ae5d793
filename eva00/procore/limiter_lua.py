"""The rate limiter's Lua scripts. They run atomically on Redis and read only Redis server time
(`TIME`), so the clocks of the processes sharing the limiter never matter.

All times inside are microseconds of Redis server time.
"""

from __future__ import annotations

# ACQUIRE: grant one request to a budget class, or say how long to wait.
# KEYS: 1 bucket hash, 2 window zset, 3 waiting zset, 4 pause-until, 5 seq counter,
#       6.. used zset of each class (in the order of CLASSES).
# ARGV: 1 index of the requesting class (1-based), 2 requester id, 3 burst, 4 refill per s,
#       5 window max, 6 window us, 7 budget window us, 8 reserve slots, 9 marker ttl us,
#       10 yield poll us, then for each class: budget, priority.
# Returns {granted 0|1, wait_us, reason}.
ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local cls = tonumber(ARGV[1])
local me = ARGV[1] .. '|' .. ARGV[2]
local burst = tonumber(ARGV[3])
local refill = tonumber(ARGV[4])
local wmax = tonumber(ARGV[5])
local wlen = tonumber(ARGV[6])
local blen = tonumber(ARGV[7])
local reserve = tonumber(ARGV[8])
local marker_ttl = tonumber(ARGV[9])
local yield_poll = tonumber(ARGV[10])
local n = #KEYS - 5

local function wait_for(us, reason)
  redis.call('ZADD', KEYS[3], now + marker_ttl, me)
  redis.call('PEXPIRE', KEYS[3], math.ceil(marker_ttl / 1000) + 1000)
  return {0, math.max(1, math.ceil(us)), reason}
end

local pause = tonumber(redis.call('GET', KEYS[4]) or '0')
if pause > now then
  return wait_for(pause - now, 'pause')
end

-- what each class used within the budget window, and who is waiting
local within = {}
for i = 1, n do
  redis.call('ZREMRANGEBYSCORE', KEYS[5 + i], '-inf', string.format('(%.0f', now - blen))
  within[i] = redis.call('ZCARD', KEYS[5 + i]) < tonumber(ARGV[9 + 2 * i])
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local waiting = {}
for _, member in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  waiting[tonumber(string.match(member, '^(%d+)|'))] = true
end

-- a waiting class that deserves the next token more: one within its budget while we borrow,
-- or one of higher priority in the same situation
local my_prio = tonumber(ARGV[10 + 2 * cls])
for d = 1, n do
  if d ~= cls and waiting[d] then
    local prio = tonumber(ARGV[10 + 2 * d])
    if (within[d] and not within[cls]) or (within[d] == within[cls] and prio > my_prio) then
      return wait_for(yield_poll, 'yield')
    end
  end
end

-- the token bucket (ts may lie in the future after a reset: no refill before it)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * refill / 1000000)
  ts = now
end
local wait = 0
local reason = 'ok'
if tokens < 1 then
  wait = (ts - now) + (1 - tokens) * 1000000 / refill
  reason = 'bucket'
end

-- the sliding window; a class borrowing beyond its budget leaves the reserve free
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('(%.0f', now - wlen))
local count = redis.call('ZCARD', KEYS[2])
local cap = wmax
if not within[cls] then
  cap = wmax - reserve
end
if count >= cap then
  local oldest = redis.call('ZRANGE', KEYS[2], count - cap, count - cap, 'WITHSCORES')
  local window_wait = tonumber(oldest[2]) + wlen - now + 1
  if window_wait > wait then
    wait = window_wait
    reason = 'window'
  end
end

redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', ts)
redis.call('PEXPIRE', KEYS[1], math.ceil(math.max(wlen, burst * 1000000 / refill) / 1000) + 60000)
if wait > 0 then
  return wait_for(wait, reason)
end

local id = string.format('%.0f:%d', now, redis.call('INCR', KEYS[5]))
redis.call('HSET', KEYS[1], 'tokens', tokens - 1)
redis.call('ZADD', KEYS[2], now, id)
redis.call('PEXPIRE', KEYS[2], math.ceil(wlen / 1000) + 1000)
redis.call('ZADD', KEYS[5 + cls], now, id)
redis.call('PEXPIRE', KEYS[5 + cls], math.ceil(blen / 1000) + 1000)
redis.call('ZREM', KEYS[3], me)
return {1, 0, 'ok'}
"""

# PAUSE: no process calls Procore before now + ARGV[1] us (a later pause already set wins).
# KEYS: 1 pause-until, 2 pause-reason, 3 bucket hash. ARGV: 1 delay us, 2 reason,
# 3 "1" to empty the bucket so that calls resume at the refill rate, not in a burst.
# Returns the pause end (us, server time).
PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local untill = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current >= untill then
  return current
end
local ttl_ms = math.ceil(tonumber(ARGV[1]) / 1000) + 1000
redis.call('SET', KEYS[1], untill, 'PX', ttl_ms)
redis.call('SET', KEYS[2], ARGV[2], 'PX', ttl_ms)
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[3], 'tokens', 0, 'ts', untill)
  redis.call('PEXPIRE', KEYS[3], ttl_ms + 60000)
end
return untill
"""
