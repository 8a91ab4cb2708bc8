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

-- The same rule as Lifetime::is_live; a hash without its times is no session.
local function is_live(key, now, idle, absolute)
  local times = redis.call('HMGET', key, ':created', ':refreshed')
  local created, refreshed = tonumber(times[1]), tonumber(times[2])
  if not created or not refreshed then
    return false
  end
  return now < math.min(refreshed + idle, created + absolute)
end

-- HSET of ARGV[from], ARGV[from + 1], ... (count pairs), in chunks that stay
-- below Lua's limit on unpacked values.
local function hset_pairs(key, from, count)
  local last = from + 2 * count - 1
  local chunk = 1000
  for start = from, last, chunk do
    redis.call('HSET', key, unpack(ARGV, start, math.min(start + chunk - 1, last)))
  end
end

-- Applies the change set laid out in ARGV from index i: clear flag ('1' or '0'),
-- user operation ('keep', 'bind' or 'unbind'), user, count n of set fields, n
-- field/value pairs, then the removed fields up to the end of ARGV.
local function apply_changes(key, i)
  local clear, user_op, user, n = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local changed = false
  if clear == '1' then
    local doomed = {}
    for _, field in ipairs(redis.call('HKEYS', key)) do
      if not is_reserved(field) then
        doomed[#doomed + 1] = field
        if #doomed == 1000 then
          redis.call('HDEL', key, unpack(doomed))
          doomed = {}
        end
      end
    end
    if #doomed > 0 then
      redis.call('HDEL', key, unpack(doomed))
    end
    changed = true
  end
  local first_set = i + 4
  if n > 0 then
    hset_pairs(key, first_set, n)
    changed = true
  end
  for j = first_set + 2 * n, #ARGV do
    redis.call('HDEL', key, ARGV[j])
    changed = true
  end
  if user_op == 'bind' then
    redis.call('HSET', key, ':user', user)
    changed = true
  elseif user_op == 'unbind' then
    redis.call('HDEL', key, ':user')
    changed = true
  end
  -- Lets a cluster cycle_id notice a change that landed while it copied the session.
  if changed then
    redis.call('HINCRBY', key, ':gen', 1)
  end
end

-- Marks the session refreshed now and keeps it exactly as long as it can live.
local function refresh(key, now, idle, absolute)
  redis.call('HSET', key, ':refreshed', ARGV[1])
  local created = tonumber(redis.call('HGET', key, ':created'))
  redis.call('PEXPIRE', key, int(math.min(idle, created + absolute - now)))
end

local now, idle, absolute = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
