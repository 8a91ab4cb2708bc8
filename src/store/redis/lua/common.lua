-- Shared by the session scripts (prepended to each). A session is one hash:
-- reserved fields start with a single ':'; a user field whose name starts with ':' is
-- stored with one more ':'. Layout 2 keeps the metadata in two reserved fields:
-- ':m' = '<created>.<refreshed>.<generation>' (milliseconds, milliseconds, a write
-- counter) and ':u' = the user. Layout 1 (':created', ':refreshed', ':gen', ':user',
-- ':v' = '1') is still read, and any write turns it into layout 2.
-- ARGV[1..3] are always now, idle timeout and absolute lifetime, in milliseconds.

-- Lua numbers are doubles: format integers without an exponent ('%d' formats them as
-- 64-bit integers, without the cost of '%.0f').
local function int(number)
  return string.format('%d', number)
end

-- The reserved fields of layout 1, dropped when a write turns a hash into layout 2.
local LAYOUT_1 = {':created', ':refreshed', ':gen', ':user', ':v'}

-- The same rule as Expiry::is_live. For a live session returns its metadata:
-- {created, generation, user (false if unbound), layout_1 (true for a hash in the old
-- layout)}; else nil. A hash in layout 2 costs one HMGET; the fields of layout 1 are read
-- only when ':m' is missing.
local function live(key, now, idle, absolute)
  local f = redis.call('HMGET', key, ':m', ':u')
  local meta, refreshed
  if f[1] then
    local created, at, generation = string.match(f[1], '^(%d+)%.(%d+)%.(%d+)$')
    meta = {created = tonumber(created), generation = tonumber(generation), user = f[2]}
    refreshed = tonumber(at)
  else
    local old = redis.call('HMGET', key, ':created', ':refreshed', ':gen', ':user')
    if old[1] then
      meta = {created = tonumber(old[1]), generation = tonumber(old[3]) or 0, user = old[4],
              layout_1 = true}
      refreshed = tonumber(old[2])
    end
  end
  if not meta or not meta.created or not refreshed
      or now >= math.min(refreshed + idle, meta.created + absolute) then
    return nil
  end
  return meta
end

-- HSET arguments for the metadata of `meta` refreshed at `now` with `generation`; a
-- hash still in layout 1 loses its old fields and keeps its user under ':u'.
local function metadata_args(key, meta, now, generation, args)
  if meta.layout_1 then
    redis.call('HDEL', key, unpack(LAYOUT_1))
    if meta.user then
      args[#args + 1] = ':u'
      args[#args + 1] = meta.user
    end
  end
  args[#args + 1] = ':m'
  args[#args + 1] = string.format('%d.%d.%d', meta.created, now, generation)
  return args
end

-- Refreshes a live session whose data a script just changed: new metadata, one more
-- write generation, and its TTL.
local function refresh_after_write(key, meta, now, idle, absolute)
  redis.call('HSET', key, unpack(metadata_args(key, meta, now, meta.generation + 1, {})))
  redis.call('PEXPIRE', key, int(math.min(idle, meta.created + absolute - now)))
end

local function is_live(key, now, idle, absolute)
  return live(key, now, idle, absolute) ~= nil
end

-- `live`, for a session a script is about to write: a dead remnant (not yet expired by
-- Redis, or without metadata) is deleted, so that the write cannot revive it.
local function live_or_drop(key, now, idle, absolute)
  local meta = live(key, now, idle, absolute)
  if not meta then
    redis.call('DEL', key)
  end
  return meta
end

-- 'overflow' or 'not-integer' when a failed HINCRBY refused the value itself. Any other
-- error is the server refusing the write (NOREPLICAS, READONLY, OOM, MASTERDOWN, ...):
-- raised as it came, so that the store reports an outage (503) and looks for the master
-- again, instead of blaming the session's data.
local function rejection(reply)
  if string.find(reply.err, 'would overflow', 1, true) then
    return 'overflow'
  end
  if string.find(reply.err, 'not an integer', 1, true) then
    return 'not-integer'
  end
  error(reply)
end

local now, idle, absolute = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
