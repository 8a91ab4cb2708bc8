-- Shared by the session scripts (prepended to each). A session is one hash:
-- reserved fields start with a single ':' (':created', ':refreshed', ':user', ':v',
-- ':gen'); a user field whose name starts with ':' is stored with one more ':'.
-- ARGV[1..3] are always now, idle timeout and absolute lifetime, in milliseconds.

local function is_reserved(field)
  return string.sub(field, 1, 1) == ':' and string.sub(field, 2, 2) ~= ':'
end

-- Lua numbers are doubles: format integers without an exponent.
local function int(number)
  return string.format('%.0f', number)
end

-- The same rule as Lifetime::is_live. For a live session returns its creation
-- time, write generation and user (false if unbound), read in one call; else nil.
local function live(key, now, idle, absolute)
  local fields = redis.call('HMGET', key, ':created', ':refreshed', ':gen', ':user')
  local created, refreshed = tonumber(fields[1]), tonumber(fields[2])
  if not created or not refreshed or now >= math.min(refreshed + idle, created + absolute) then
    return nil
  end
  return created, tonumber(fields[3]) or 0, fields[4]
end

local function is_live(key, now, idle, absolute)
  return live(key, now, idle, absolute) ~= nil
end

-- Values per call when unpacking ARGV ranges: below Lua's limit on unpacked values.
local CHUNK = 1000

-- HSET of ARGV[from], ARGV[from + 1], ... (count pairs), in chunks.
local function hset_pairs(key, from, count)
  local last = from + 2 * count - 1
  for start = from, last, CHUNK do
    redis.call('HSET', key, unpack(ARGV, start, math.min(start + CHUNK - 1, last)))
  end
end

-- Applies the change set laid out in ARGV from index i (clear flag '1' or '0', user
-- operation 'keep', 'bind' or 'unbind', user, count n of set fields, n field/value
-- pairs, then the removed fields up to the end of ARGV) to a live session, marks it
-- refreshed now and sets its TTL. The set fields, the user, the refresh time and the
-- new write generation (counted so that a cluster cycle_id notices a change that landed
-- while it copied the session) go in one HSET: a one-field change is HSET + PEXPIRE.
local function apply_and_refresh(key, i, created, generation, now, idle, absolute)
  local clear, user_op, user, n = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local first_set, first_removed = i + 4, i + 4 + 2 * n
  local changed = clear == '1' or user_op ~= 'keep' or n > 0 or first_removed <= #ARGV
  if clear == '1' then
    local doomed = {}
    for _, field in ipairs(redis.call('HKEYS', key)) do
      if not is_reserved(field) then
        doomed[#doomed + 1] = field
        if #doomed == CHUNK then
          redis.call('HDEL', key, unpack(doomed))
          doomed = {}
        end
      end
    end
    if #doomed > 0 then
      redis.call('HDEL', key, unpack(doomed))
    end
  end
  for start = first_removed, #ARGV, CHUNK do
    redis.call('HDEL', key, unpack(ARGV, start, math.min(start + CHUNK - 1, #ARGV)))
  end
  if user_op == 'unbind' then
    redis.call('HDEL', key, ':user')
  end
  -- Whole chunks of set fields first; the rest goes with the metadata.
  local last_set, start = first_removed - 1, first_set
  while last_set - start + 1 > CHUNK do
    redis.call('HSET', key, unpack(ARGV, start, start + CHUNK - 1))
    start = start + CHUNK
  end
  local args = {}
  for j = start, last_set do
    args[#args + 1] = ARGV[j]
  end
  args[#args + 1] = ':refreshed'
  args[#args + 1] = ARGV[1]
  if user_op == 'bind' then
    args[#args + 1] = ':user'
    args[#args + 1] = user
  end
  if changed then
    args[#args + 1] = ':gen'
    args[#args + 1] = int(generation + 1)
  end
  redis.call('HSET', key, unpack(args))
  redis.call('PEXPIRE', key, int(math.min(idle, created + absolute - now)))
end

local now, idle, absolute = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
