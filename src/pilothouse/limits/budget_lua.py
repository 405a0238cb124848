"""Redis Lua for budgets: one script reserves (or settles) every scope of a request at once.

Each scope (a key, its team, its user) has four Redis keys, passed in order:
budget hash (spent, reserved, frozen), lease zset (id -> expiry ms), lease
amounts hash (id -> pico) and a scratch counter. Redis TIME is the one clock.
Sums and comparisons use Redis' 64-bit integer commands (HINCRBY, DECRBY on the
scratch key), never Lua doubles, which are exact only to 2^53.
"""

from __future__ import annotations

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = #KEYS / 4
"""

_REAP = """
for s = 0, n - 1 do
  local h, z, a = KEYS[4 * s + 1], KEYS[4 * s + 2], KEYS[4 * s + 3]
  local expired = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  for _, id in ipairs(expired) do
    local amt = redis.call('HGET', a, id)
    if amt and amt ~= '0' then
      local r = redis.call('HINCRBY', h, 'reserved', '-' .. amt)
      if r < 0 then redis.call('HSET', h, 'reserved', '0') end
    end
    redis.call('HDEL', a, id)
    redis.call('ZREM', z, id)
  end
end
"""

# ARGV: amount, lease id, lease ms, then one budget per scope. Returns 'ok',
# '<scope index>:frozen' or '<scope index>:left:<pico>' for the first scope that refuses.
RESERVE = (
    _NOW
    + _REAP
    + """
for s = 0, n - 1 do
  local h, x = KEYS[4 * s + 1], KEYS[4 * s + 4]
  local budget = ARGV[4 + s]
  local frozen = redis.call('HGET', h, 'frozen')
  if frozen then
    if frozen == budget then return s .. ':frozen' end
    redis.call('HDEL', h, 'frozen')
  end
  local spent = redis.call('HGET', h, 'spent') or '0'
  local reserved = redis.call('HGET', h, 'reserved') or '0'
  redis.call('SET', x, budget)
  local unspent = redis.call('DECRBY', x, spent)
  if unspent <= 0 then redis.call('DEL', x); return s .. ':left:0' end
  local left = redis.call('DECRBY', x, reserved)
  if left < 0 then redis.call('DEL', x); return s .. ':left:0' end
  local left_text = redis.call('GET', x)
  local after = redis.call('DECRBY', x, ARGV[1])
  redis.call('DEL', x)
  if after < 0 then return s .. ':left:' .. left_text end
end
for s = 0, n - 1 do
  local h, z, a = KEYS[4 * s + 1], KEYS[4 * s + 2], KEYS[4 * s + 3]
  redis.call('HINCRBY', h, 'reserved', ARGV[1])
  redis.call('HSET', a, ARGV[2], ARGV[1])
  redis.call('ZADD', z, now + tonumber(ARGV[3]), ARGV[2])
end
return 'ok'
"""
)

# ARGV: lease id, actual pico, then per scope the budget to freeze at ('' = no freeze).
SETTLE = """
local n = #KEYS / 4
for s = 0, n - 1 do
  local h, z, a = KEYS[4 * s + 1], KEYS[4 * s + 2], KEYS[4 * s + 3]
  local amt = redis.call('HGET', a, ARGV[1])
  if amt then
    if amt ~= '0' then
      local r = redis.call('HINCRBY', h, 'reserved', '-' .. amt)
      if r < 0 then redis.call('HSET', h, 'reserved', '0') end
    end
    redis.call('HDEL', a, ARGV[1])
    redis.call('ZREM', z, ARGV[1])
  end
  if ARGV[2] ~= '0' then redis.call('HINCRBY', h, 'spent', ARGV[2]) end
  if ARGV[3 + s] ~= '' then redis.call('HSET', h, 'frozen', ARGV[3 + s]) end
end
return 1
"""

RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expiry = now + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', expiry, ARGV[i]) end
return 1
"""

RESERVED = (
    _NOW
    + _REAP
    + """
return redis.call('HGET', KEYS[1], 'reserved') or '0'
"""
)
