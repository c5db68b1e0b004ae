"""Lua scripts of the Redis backend. Each runs atomically on the one slot of its pool (every
key it touches carries the `{<pool>}` hash tag), so allocation and lookup stay correct with
many sipmask nodes writing at once.

Times are integer milliseconds. A session is *logically* expired when `expires_at <= now`
(now comes from the caller, so tests use a fake clock); key TTLs only reclaim memory later.
TTL does not cascade, so the scripts prune what points at dead sessions as they meet it.
"""

from __future__ import annotations

from . import keys as K

# ARGV[1] of every pool script is the pool's key prefix, `sipmask:{P}:`.
PRELUDE = f"""
local P = ARGV[1]
local K_SESSION, K_PART, K_PAIR, K_INTER = P .. "{K.SESSION}", P .. "{K.PARTICIPANT}",
    P .. "{K.PAIR}", P .. "{K.INTERACTIONS}"
local K_META, K_LRU, K_RES, K_DRAIN = P .. "{K.META}", P .. "{K.LRU}", P .. "{K.RESERVED}",
    P .. "{K.DRAINING}"
local K_GEO, K_USE, K_SESSIONS, K_CLOSED = P .. "{K.GEO}", P .. "{K.USE}",
    P .. "{K.SESSIONS}", P .. "{K.CLOSED}"
"""

PRELUDE += r"""
local function fmt(n) return string.format("%d", n) end

-- one open (session, participant) use fewer of a number
local function unuse(num)
  if redis.call("HINCRBY", K_USE, num, -1) <= 0 then redis.call("HDEL", K_USE, num) end
end

-- make a key live at least ttl ms (never shorten it)
local function extend(key, ttl)
  local t = redis.call("PTTL", key)
  if t == -1 or (t >= 0 and t < ttl) then redis.call("PEXPIRE", key, ttl) end
end

-- close a session: drop both bindings, keep the record for the retention period
local function close(sid, reason, now, retention)
  local s = K_SESSION .. sid
  local f = redis.call("HMGET", s, "status", "a_key", "a_num", "b_key", "b_num")
  if not f[1] then
    redis.call("ZREM", K_SESSIONS, sid)
    return false
  end
  if f[1] == "closed" then return true end
  for i = 2, 4, 2 do
    local pk = K_PART .. f[i]
    if redis.call("HGET", pk, f[i + 1]) == sid then redis.call("HDEL", pk, f[i + 1]) end
    unuse(f[i + 1])
  end
  redis.call("ZREM", K_SESSIONS, sid)
  redis.call("ZADD", K_CLOSED, now, sid)
  redis.call("HSET", s, "status", "closed", "closed_reason", reason, "closed_at", fmt(now))
  redis.call("PEXPIRE", s, retention)
  redis.call("PEXPIRE", K_INTER .. sid, retention)
  return true
end

-- numbers a participant holds in open sessions; closes expired sessions and drops entries
-- that point at closed or vanished ones (TTL does not cascade)
local function held(key, now, retention)
  local pk = K_PART .. key
  local h = redis.call("HGETALL", pk)
  local used = {}
  for i = 1, #h, 2 do
    local num, sid = h[i], h[i + 1]
    local f = redis.call("HMGET", K_SESSION .. sid, "status", "expires_at")
    if not f[1] then
      redis.call("HDEL", pk, num)
      unuse(num)
    elseif f[1] == "closed" then
      redis.call("HDEL", pk, num)
    elseif tonumber(f[2]) <= now then
      close(sid, "expired", now, retention)
    else
      used[num] = true
    end
  end
  return used
end
"""

# KEYS: meta, participant a, participant b, pair, session.
# ARGV: prefix, sid, now, retention, sticky ttl, ttl, mode, doc,
#       a key, a pin, a country, a area, b key, b pin, b country, b area, a first in pair.
CREATE = PRELUDE + r"""
if redis.call("EXISTS", K_META) == 0 then return {"unknown-pool"} end
local now, retention, ttl = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[6])
local sid = ARGV[2]

local function pool_number(n)
  return redis.call("ZSCORE", K_LRU, n) or redis.call("SISMEMBER", K_RES, n) == 1
    or redis.call("SISMEMBER", K_DRAIN, n) == 1
end
for _, k in ipairs({ARGV[9], ARGV[13]}) do
  if pool_number(k) then return {"pool-number", k} end
end

local sticky_a, sticky_b = false, false
local pair = redis.call("GET", KEYS[4])
if pair then
  local x, y = string.match(pair, "^([^\n]*)\n(.*)$")
  if ARGV[17] == "1" then sticky_a, sticky_b = x, y else sticky_a, sticky_b = y, x end
end

-- issue 4 allocation rule: pinned, else sticky, else best geo-match in LRU order
local function pick(pin, country, area, sticky, used)
  if pin ~= "" then
    if not (redis.call("ZSCORE", K_LRU, pin) or redis.call("SISMEMBER", K_RES, pin) == 1) then
      return nil, "not-in-pool"
    end
    if used[pin] then return nil, "pin-in-use" end
    return pin
  end
  if sticky and not used[sticky] and redis.call("ZSCORE", K_LRU, sticky) then return sticky end
  local best, best_score = nil, -1
  for _, n in ipairs(redis.call("ZRANGE", K_LRU, 0, -1)) do
    if not used[n] then
      local score = 0
      if country ~= "" then
        local g = redis.call("HGET", K_GEO, n)
        if g then
          local c, a = string.match(g, "^([^|]*)|(.*)$")
          if c == country then
            score = 1
            if area ~= "" and a == area then score = 2 end
          end
        end
      end
      if score > best_score then
        best, best_score = n, score
        if score == 2 then break end
      end
    end
  end
  if not best then return nil, "exhausted" end
  return best
end

local a, err = pick(ARGV[10], ARGV[11], ARGV[12], sticky_a, held(ARGV[9], now, retention))
if not a then return {err, ARGV[9], ARGV[10]} end
-- the first number is now the most recently used one when the second is picked
local a_score = redis.call("ZSCORE", K_LRU, a)
redis.call("ZADD", K_LRU, "XX", now, a)
local b, err2 = pick(ARGV[14], ARGV[15], ARGV[16], sticky_b, held(ARGV[13], now, retention))
if not b then
  if a_score then redis.call("ZADD", K_LRU, "XX", a_score, a) end
  return {err2, ARGV[13], ARGV[14]}
end

local expires = now + ttl
local life = ttl + retention
redis.call("HSET", KEYS[5], "doc", ARGV[8], "a_key", ARGV[9], "a_num", a, "b_key", ARGV[13],
  "b_num", b, "status", "open", "expires_at", fmt(expires), "ttl", ARGV[6], "mode", ARGV[7])
redis.call("PEXPIRE", KEYS[5], life)
redis.call("ZADD", K_SESSIONS, expires, sid)
redis.call("HSET", KEYS[2], a, sid)
extend(KEYS[2], life)
redis.call("HSET", KEYS[3], b, sid)
extend(KEYS[3], life)
redis.call("HINCRBY", K_USE, a, 1)
redis.call("HINCRBY", K_USE, b, 1)
redis.call("ZADD", K_LRU, "XX", now, b)
if ARGV[17] == "1" then
  redis.call("SET", KEYS[4], a .. "\n" .. b, "PX", ARGV[5])
else
  redis.call("SET", KEYS[4], b .. "\n" .. a, "PX", ARGV[5])
end
return {"ok", a, b}
"""

# KEYS: the caller's participant hash. ARGV: prefix, dialled number, now, retention.
# The one round trip of the call path: binding, expiry check, sliding renewal, in-progress.
LOOKUP = PRELUDE + r"""
local sid = redis.call("HGET", KEYS[1], ARGV[2])
if not sid then return false end
local s = K_SESSION .. sid
local f = redis.call("HMGET", s, "status", "expires_at", "mode", "ttl", "doc",
  "a_key", "a_num", "b_key", "b_num")
if not f[1] then
  redis.call("HDEL", KEYS[1], ARGV[2])
  unuse(ARGV[2])
  return false
end
if f[1] == "closed" then
  redis.call("HDEL", KEYS[1], ARGV[2])
  return false
end
local now, retention = tonumber(ARGV[3]), tonumber(ARGV[4])
local expires = tonumber(f[2])
if expires <= now then
  close(sid, "expired", now, retention)
  return false
end
if f[3] == "sliding" then
  expires = now + tonumber(f[4])
  redis.call("HSET", s, "expires_at", fmt(expires))
  redis.call("ZADD", K_SESSIONS, expires, sid)
  local life = tonumber(f[4]) + retention
  redis.call("PEXPIRE", s, life)
  extend(K_PART .. f[6], life)
  extend(K_PART .. f[8], life)
  extend(K_INTER .. sid, life)
end
local status = f[1]
if status == "open" then
  status = "in-progress"
  redis.call("HSET", s, "status", status)
end
return {sid, f[5], f[6], f[7], f[8], f[9], status, fmt(expires)}
"""

# KEYS: session. ARGV: prefix, sid, reason, now, retention. Returns 0 if there is none.
CLOSE = PRELUDE + r"""
if redis.call("EXISTS", KEYS[1]) == 0 then return 0 end
close(ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]))
return 1
"""

# KEYS: sessions index. ARGV: prefix, now, retention, batch size.
# Returns {closed count, {released numbers}}.
EXPIRE = PRELUDE + r"""
local now, retention = tonumber(ARGV[2]), tonumber(ARGV[3])
local ids = redis.call("ZRANGEBYSCORE", K_SESSIONS, "-inf", ARGV[2], "LIMIT", 0, tonumber(ARGV[4]))
local count = 0
for _, sid in ipairs(ids) do
  if close(sid, "expired", now, retention) then count = count + 1 end
end
-- closed sessions past their retention go (their key TTL would too, in real time)
local old = redis.call("ZRANGEBYSCORE", K_CLOSED, "-inf", fmt(now - retention), "LIMIT", 0,
  tonumber(ARGV[4]))
for _, sid in ipairs(old) do
  redis.call("DEL", K_SESSION .. sid, K_INTER .. sid)
  redis.call("ZREM", K_CLOSED, sid)
end
local released = {}
for _, n in ipairs(redis.call("SMEMBERS", K_DRAIN)) do
  if not redis.call("HGET", K_USE, n) then
    redis.call("SREM", K_DRAIN, n)
    redis.call("HDEL", K_GEO, n)
    released[#released + 1] = n
  end
end
return {count, math.max(#ids, #old), released}
"""

# A pool update runs in chunks (issue 13: one script over 55,000 numbers held Redis for
# ~180 ms, every lookup waiting behind it): SET_NUMBERS for the numbers wanted, DROP_NUMBERS
# for those no longer wanted, then SET_META, which makes a new pool exist.
# SET_NUMBERS: KEYS meta. ARGV: prefix, "free" or "reserved", then number, geo, number, geo...
SET_NUMBERS = PRELUDE + r"""
local free = ARGV[2] == "free"
for i = 3, #ARGV, 2 do
  local n = ARGV[i]
  redis.call("SREM", K_DRAIN, n)
  if free then
    redis.call("SREM", K_RES, n)
    redis.call("ZADD", K_LRU, "NX", 0, n)
  else
    redis.call("ZREM", K_LRU, n)
    redis.call("SADD", K_RES, n)
  end
  redis.call("HSET", K_GEO, n, ARGV[i + 1])
end
return 1
"""

# DROP_NUMBERS: KEYS meta. ARGV: prefix, numbers... Numbers in use are drained; returns the
# numbers released entirely.
DROP_NUMBERS = PRELUDE + r"""
local released = {}
for i = 2, #ARGV do
  local n = ARGV[i]
  if redis.call("ZREM", K_LRU, n) + redis.call("SREM", K_RES, n) > 0 then
    if redis.call("HGET", K_USE, n) then
      redis.call("SADD", K_DRAIN, n)
    else
      redis.call("HDEL", K_GEO, n)
      released[#released + 1] = n
    end
  end
end
return released
"""

# SET_META: KEYS meta. ARGV: prefix, now, name.
SET_META = PRELUDE + r"""
redis.call("HSET", K_META, "name", ARGV[3], "updated_at", ARGV[2])
return 1
"""

# KEYS: meta. ARGV: prefix. Deletes a pool without open sessions; returns its numbers.
DELETE_POOL = PRELUDE + r"""
if redis.call("EXISTS", K_META) == 0 then return {"unknown-pool"} end
if redis.call("ZCARD", K_SESSIONS) > 0 then return {"in-use"} end
local out = {"ok"}
for _, n in ipairs(redis.call("ZRANGE", K_LRU, 0, -1)) do out[#out + 1] = n end
for _, n in ipairs(redis.call("SMEMBERS", K_RES)) do out[#out + 1] = n end
for _, n in ipairs(redis.call("SMEMBERS", K_DRAIN)) do out[#out + 1] = n end
redis.call("DEL", K_META, K_LRU, K_RES, K_DRAIN, K_GEO, K_USE, K_SESSIONS)
return out
"""

# KEYS: session, its call records. ARGV: prefix, record JSON, most records kept.
RECORD = PRELUDE + r"""
local ttl = redis.call("PTTL", KEYS[1])
if ttl == -2 then return 0 end
redis.call("RPUSH", KEYS[2], ARGV[2])
redis.call("LTRIM", KEYS[2], -tonumber(ARGV[3]), -1)
if ttl > 0 then redis.call("PEXPIRE", KEYS[2], ttl) end
return 1
"""

# Reads that must see one moment (a script, not MULTI/EXEC: the same on every client kind).
# POOL_STATE: KEYS meta. ARGV: prefix. Returns {exists, assignable, reserved, draining}.
POOL_STATE = PRELUDE + r"""
return {redis.call("EXISTS", K_META), redis.call("ZRANGE", K_LRU, 0, -1),
  redis.call("SMEMBERS", K_RES), redis.call("SMEMBERS", K_DRAIN)}
"""

# INTERACTIONS_OF: KEYS session, its call records. Returns {session exists, records}.
INTERACTIONS_OF = r"""
return {redis.call("EXISTS", KEYS[1]), redis.call("LRANGE", KEYS[2], 0, -1)}
"""

# Directory scripts: the directory hash is one key (its own slot); the set of pool names,
# another slot in a cluster, is changed by the caller in a step of its own.
# CLAIM: ARGV pool, numbers...: own every number, or fail naming the first owned elsewhere.
CLAIM = r"""
for i = 2, #ARGV do
  local owner = redis.call("HGET", KEYS[1], ARGV[i])
  if owner and owner ~= ARGV[1] then return {"taken", ARGV[i], owner} end
end
for i = 2, #ARGV do redis.call("HSET", KEYS[1], ARGV[i], ARGV[1]) end
return {"ok"}
"""

# RELEASE: ARGV pool, numbers...: drop the numbers this pool owns.
RELEASE = r"""
for i = 2, #ARGV do
  if redis.call("HGET", KEYS[1], ARGV[i]) == ARGV[1] then redis.call("HDEL", KEYS[1], ARGV[i]) end
end
return 1
"""
