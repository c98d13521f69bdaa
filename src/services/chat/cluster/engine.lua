-- ferry's cluster engine: every change to shared chat state, each one atomic, in one script.
--
-- ARGV[1] is the operation, ARGV[2] the stream length kept per room, ARGV[3] the retention as
-- "AGE_MS,ROOM_BYTES,TOTAL_BYTES"; the rest depend on the operation. Keys are built here from
-- their names (one Redis, not Redis Cluster: see cluster/keys.rs for the layout).
--
-- Every change a room's members must see is appended to the room's stream and published on
-- the room's channel as "ID JSON" in the same step, so the stream's order is the one order
-- every server delivers in, and a server that missed messages reads them back by ID.
--
-- Memory is bounded where lines are recorded, as on a single server: each room's stream keeps
-- at most ROOM_BYTES of lines (and the length and age above), all rooms together TOTAL_BYTES
-- (the room that speaks gives up its oldest lines first, then others). A room's stream
-- outlives its last member (its past is there when someone comes back) until it ages out; the
-- byte counts (`logbytes`, per room, and `bytes`, in all) follow every append and trim, and
-- a stream that expired is taken off them at the next heartbeat's sweep.
--
-- Fencing: a server the others reaped (its heartbeat lapsed: paused, or cut from Redis) is
-- marked, and every operation it sends that would record anything is refused with
-- 'ferry-fenced' until it has reconciled — so a server back from the dead learns that it was
-- reaped before it speaks for a nick someone else may hold now.

local P = 'ferry:'
local op = ARGV[1]
local maxlen = tonumber(ARGV[2])
local age, room_bytes, total_bytes = string.match(ARGV[3], '^(%d+),(%d+),(%d+)$')
age, room_bytes, total_bytes = tonumber(age), tonumber(room_bytes), tonumber(total_bytes)
local REAPED_MS = 86400000
local FENCED = 'ferry-fenced: the other servers reaped this one (its heartbeat lapsed); it rejoins first'

local function fenced(node)
  return redis.call('EXISTS', P .. 'reaped:' .. node) == 1
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Removes up to `most` of a room's oldest entries while `more(entries left)` says so; keeps
-- the byte counts. Returns how many it removed.
local function trim_oldest(room, most, more)
  local log = P .. 'room:' .. room .. ':log'
  local removed = 0
  while removed < most and more() do
    local oldest = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)[1]
    if not oldest then break end
    local bytes = #(oldest[2][2] or '')
    redis.call('XDEL', log, oldest[1])
    redis.call('HINCRBY', P .. 'logbytes', room, -bytes)
    redis.call('DECRBY', P .. 'bytes', bytes)
    removed = removed + 1
  end
  return removed
end

local function room_used(room)
  return tonumber(redis.call('HGET', P .. 'logbytes', room) or '0')
end

local function total_used()
  return tonumber(redis.call('GET', P .. 'bytes') or '0')
end

-- A room without members is no longer listed; its stream stays until it ages out.
local function forget_room(room)
  redis.call('SREM', P .. 'rooms', room)
  redis.call('DEL', P .. 'room:' .. room .. ':topic')
end

-- Takes the streams that expired off the byte counts.
local function sweep_expired()
  local all = redis.call('HGETALL', P .. 'logbytes')
  for i = 1, #all, 2 do
    if redis.call('EXISTS', P .. 'room:' .. all[i] .. ':log') == 0 then
      redis.call('DECRBY', P .. 'bytes', tonumber(all[i + 1]))
      redis.call('HDEL', P .. 'logbytes', all[i])
    end
  end
end

local function append(room, json)
  local log = P .. 'room:' .. room .. ':log'
  -- A stream that expired since the last sweep starts its count again.
  if redis.call('EXISTS', log) == 0 then
    redis.call('DECRBY', P .. 'bytes', room_used(room))
    redis.call('HDEL', P .. 'logbytes', room)
  end
  local id = redis.call('XADD', log, '*', 'j', json)
  redis.call('PEXPIRE', log, age)
  redis.call('HINCRBY', P .. 'logbytes', room, #json)
  redis.call('INCRBY', P .. 'bytes', #json)
  -- The room's own bounds: length, age, bytes (the new entry always stays).
  local cutoff = now_ms() - age
  trim_oldest(room, 64, function()
    if redis.call('XLEN', log) <= 1 then return false end
    if redis.call('XLEN', log) > maxlen or room_used(room) > room_bytes then return true end
    local oldest = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)[1]
    return oldest and tonumber(string.match(oldest[1], '^(%d+)')) < cutoff
  end)
  -- All rooms together: this room first, then others, a bounded amount of work per line.
  if total_used() > total_bytes then
    trim_oldest(room, 64, function()
      return redis.call('XLEN', log) > 1 and total_used() > total_bytes
    end)
    for _ = 1, 8 do
      if total_used() <= total_bytes then break end
      local other = redis.call('SRANDMEMBER', P .. 'rooms')
      if not other then break end
      if other ~= room then
        trim_oldest(other, 64, function() return total_used() > total_bytes end)
      end
    end
  end
  redis.call('PUBLISH', P .. 'room:' .. room, id .. ' ' .. json)
  return id
end

local function owner_of(node, pid)
  return node .. ' ' .. pid
end

-- Owner strings are "NODE PID" (members) or "NODE PID NICK" (nicks).
local function split(s)
  local parts = {}
  for part in string.gmatch(s, '[^ ]+') do parts[#parts + 1] = part end
  return parts
end

local function leave_json(node, pid, nick, why)
  local flag = ''
  if why == 'gone' then flag = ',"gone":true' end
  return '{"k":"leave","n":' .. cjson.encode(node) .. ',"p":' .. pid .. ',"f":' ..
    cjson.encode(nick) .. flag .. '}'
end

local function join_json(node, pid, nick)
  return '{"k":"join","n":' .. cjson.encode(node) .. ',"p":' .. pid .. ',"f":' ..
    cjson.encode(nick) .. '}'
end

-- A dead server (`why` 'gone') or one stopping ('left'): its members leave every room (each
-- room told), its nicks are freed, the bot lease it held is given up.
local function reap(node, why)
  local prefix = node .. ' '
  local rooms = redis.call('SMEMBERS', P .. 'node:' .. node .. ':rooms')
  for _, room in ipairs(rooms) do
    local members = P .. 'room:' .. room .. ':members'
    local all = redis.call('HGETALL', members)
    for i = 1, #all, 2 do
      local nick, owner = all[i], all[i + 1]
      if string.sub(owner, 1, #prefix) == prefix then
        redis.call('HDEL', members, nick)
        append(room, leave_json(node, split(owner)[2], nick, why))
      end
    end
    if redis.call('HLEN', members) == 0 then forget_room(room) end
  end
  if why == 'gone' then redis.call('SET', P .. 'reaped:' .. node, '1', 'PX', REAPED_MS) end
  redis.call('DEL', P .. 'node:' .. node .. ':rooms')
  redis.call('DEL', P .. 'node:' .. node)
  local nicks = redis.call('HGETALL', P .. 'nicks')
  for i = 1, #nicks, 2 do
    if string.sub(nicks[i + 1], 1, #prefix) == prefix then
      redis.call('HDEL', P .. 'nicks', nicks[i])
    end
  end
  redis.call('SREM', P .. 'nodes', node)
  if redis.call('GET', P .. 'bot') == node then redis.call('DEL', P .. 'bot') end
end

if op == 'say' then
  -- room, json, node
  if fenced(ARGV[6]) then return redis.error_reply(FENCED) end
  return append(ARGV[4], ARGV[5])

elseif op == 'join' then
  -- room, node, pid, nick, json, history entries to scan
  local room, node, pid, nick = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
  if fenced(node) then return redis.error_reply(FENCED) end
  local members = P .. 'room:' .. room .. ':members'
  local held = redis.call('HGET', members, nick)
  if held and held ~= owner_of(node, pid) then return {'taken'} end
  redis.call('HSET', members, nick, owner_of(node, pid))
  redis.call('SADD', P .. 'node:' .. node .. ':rooms', room)
  redis.call('SADD', P .. 'rooms', room)
  local id = append(room, ARGV[8])
  local history = redis.call('XREVRANGE', P .. 'room:' .. room .. ':log', id, '-', 'COUNT',
    tonumber(ARGV[9]))
  local topic = redis.call('GET', P .. 'room:' .. room .. ':topic')
  return {'ok', id, redis.call('HKEYS', members), topic or '', history}

elseif op == 'leave' then
  -- room, node, pid, nick, json
  local room, node, pid, nick = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
  local members = P .. 'room:' .. room .. ':members'
  if redis.call('HGET', members, nick) ~= owner_of(node, pid) then return false end
  redis.call('HDEL', members, nick)
  local id = append(room, ARGV[8])
  if redis.call('HLEN', members) == 0 then forget_room(room) end
  return id

elseif op == 'topic' then
  -- room, json, topic ('' clears), node
  if fenced(ARGV[7]) then return redis.error_reply(FENCED) end
  local key = P .. 'room:' .. ARGV[4] .. ':topic'
  if ARGV[6] == '' then redis.call('DEL', key) else redis.call('SET', key, ARGV[6]) end
  return append(ARGV[4], ARGV[5])

elseif op == 'claim' then
  -- node, pid, skeleton, nick, force ('1' for the bot, whose lease decides)
  local node, pid, skel, nick = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
  if fenced(node) then return redis.error_reply(FENCED) end
  local held = redis.call('HGET', P .. 'nicks', skel)
  if held and ARGV[8] ~= '1' then
    local parts = split(held)
    if parts[1] ~= node or parts[2] ~= pid then return parts[3] end
  end
  redis.call('HSET', P .. 'nicks', skel, owner_of(node, pid) .. ' ' .. nick)
  return false

elseif op == 'release' then
  -- node, pid, skeleton
  local held = redis.call('HGET', P .. 'nicks', ARGV[6])
  if held then
    local parts = split(held)
    if parts[1] == ARGV[4] and parts[2] == ARGV[5] then redis.call('HDEL', P .. 'nicks', ARGV[6]) end
  end
  return false

elseif op == 'nick' then
  -- node, pid, old skeleton, new skeleton, old, new, json, rooms...
  local node, pid = ARGV[4], ARGV[5]
  if fenced(node) then return redis.error_reply(FENCED) end
  local old_skel, new_skel, old, new = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
  local held = redis.call('HGET', P .. 'nicks', new_skel)
  if held then
    local parts = split(held)
    if parts[1] ~= node or parts[2] ~= pid then return parts[3] end
  end
  local was = redis.call('HGET', P .. 'nicks', old_skel)
  if was then
    local parts = split(was)
    if parts[1] == node and parts[2] == pid then redis.call('HDEL', P .. 'nicks', old_skel) end
  end
  redis.call('HSET', P .. 'nicks', new_skel, owner_of(node, pid) .. ' ' .. new)
  for i = 11, #ARGV do
    local room = ARGV[i]
    local members = P .. 'room:' .. room .. ':members'
    if redis.call('HGET', members, old) == owner_of(node, pid) then
      redis.call('HDEL', members, old)
      redis.call('HSET', members, new, owner_of(node, pid))
      append(room, ARGV[10])
    end
  end
  return false

elseif op == 'find' then
  -- skeleton: the holder's "NODE PID NICK", or nil
  return redis.call('HGET', P .. 'nicks', ARGV[4])

elseif op == 'route' then
  -- skeleton, message, sender's node[, user, most kept, kept JSON]: published to the holder's
  -- server as "PID MESSAGE"; 0 when no one holds the nick (or its server is not listening).
  -- With a user (the nick is a configured user's name), a message no one holds the nick for
  -- is kept for that user instead: 'kept N' (N now wait), or 'full' at the bound. The kept
  -- JSON gains "ms", Redis's time, as when it was sent.
  if fenced(ARGV[6]) then return redis.error_reply(FENCED) end
  local held = redis.call('HGET', P .. 'nicks', ARGV[4])
  if not held then
    if not ARGV[7] or ARGV[7] == '' then return 0 end
    local kept = P .. 'kept:' .. ARGV[7]
    if redis.call('LLEN', kept) >= tonumber(ARGV[8]) then return 'full' end
    local json = string.sub(ARGV[9], 1, -2) .. ',"ms":' .. now_ms() .. '}'
    return 'kept ' .. redis.call('RPUSH', kept, json)
  end
  local parts = split(held)
  return redis.call('PUBLISH', P .. 'node:' .. parts[1], parts[2] .. ' ' .. ARGV[5])

elseif op == 'take' then
  -- user: the direct messages kept for them, oldest first, forgotten as they are handed over
  local kept = P .. 'kept:' .. ARGV[4]
  local all = redis.call('LRANGE', kept, 0, -1)
  redis.call('DEL', kept)
  return all

elseif op == 'heartbeat' then
  -- node, name, timeout ms: 'fenced' (and no heartbeat) when the others reaped this server
  if fenced(ARGV[4]) then return 'fenced' end
  redis.call('SET', P .. 'node:' .. ARGV[4], ARGV[5], 'PX', tonumber(ARGV[6]))
  redis.call('SADD', P .. 'nodes', ARGV[4])
  return false

elseif op == 'reap' then
  -- node (self): every other server whose heartbeat is gone is reaped; returns them
  sweep_expired()
  local reaped = {}
  for _, node in ipairs(redis.call('SMEMBERS', P .. 'nodes')) do
    if node ~= ARGV[4] and redis.call('EXISTS', P .. 'node:' .. node) == 0 then
      reap(node, 'gone')
      reaped[#reaped + 1] = node
    end
  end
  return reaped

elseif op == 'depart' then
  -- node: this server is stopping; its members leave every room now, not at the timeout
  reap(ARGV[4], 'left')
  return false

elseif op == 'lease' then
  -- node, timeout ms: 1 when this server holds the bot lease (taken or renewed)
  local key = P .. 'bot'
  if fenced(ARGV[4]) then return 0 end
  local holder = redis.call('GET', key)
  if holder == ARGV[4] then
    redis.call('PEXPIRE', key, tonumber(ARGV[5]))
    return 1
  end
  if holder then return 0 end
  redis.call('SET', key, ARGV[4], 'PX', tonumber(ARGV[5]))
  return 1

elseif op == 'reconcile' then
  -- node, name, timeout ms, local state as JSON {nicks: [[skel, pid, nick]...],
  -- rooms: {room: [[nick, pid]...]}}: Redis is made to say what this server holds (after a
  -- Redis outage, or after others reaped it). Returns the nicks someone else took meanwhile.
  local node = ARGV[4]
  redis.call('DEL', P .. 'reaped:' .. node)
  redis.call('SET', P .. 'node:' .. node, ARGV[5], 'PX', tonumber(ARGV[6]))
  redis.call('SADD', P .. 'nodes', node)
  local state = cjson.decode(ARGV[7])
  local prefix = node .. ' '
  local mine = {}
  for _, entry in ipairs(state.nicks) do mine[entry[1]] = entry end
  local nicks = redis.call('HGETALL', P .. 'nicks')
  for i = 1, #nicks, 2 do
    if string.sub(nicks[i + 1], 1, #prefix) == prefix and not mine[nicks[i]] then
      redis.call('HDEL', P .. 'nicks', nicks[i])
    end
  end
  local lost = {}
  local lost_pid = {}
  for _, entry in ipairs(state.nicks) do
    local held = redis.call('HGET', P .. 'nicks', entry[1])
    local want = owner_of(node, tostring(entry[2])) .. ' ' .. entry[3]
    if held and string.sub(held, 1, #prefix) ~= prefix then
      lost[#lost + 1] = entry[3]
      lost_pid[tostring(entry[2])] = true
    elseif held ~= want then
      redis.call('HSET', P .. 'nicks', entry[1], want)
    end
  end
  local rooms = {}
  for _, room in ipairs(redis.call('SMEMBERS', P .. 'node:' .. node .. ':rooms')) do
    rooms[room] = {}
  end
  for room, list in pairs(state.rooms) do rooms[room] = list end
  for room, list in pairs(rooms) do
    local members = P .. 'room:' .. room .. ':members'
    local want = {}
    -- A member whose nick another server's member took meanwhile is not put back: its
    -- session ends (the server is told through the lost list).
    for _, m in ipairs(list) do
      if not lost_pid[tostring(m[2])] then want[m[1]] = owner_of(node, tostring(m[2])) end
    end
    local all = redis.call('HGETALL', members)
    for i = 1, #all, 2 do
      local nick, owner = all[i], all[i + 1]
      if string.sub(owner, 1, #prefix) == prefix and want[nick] ~= owner then
        redis.call('HDEL', members, nick)
        append(room, leave_json(node, split(owner)[2], nick, 'gone'))
      end
    end
    for nick, owner in pairs(want) do
      if redis.call('HGET', members, nick) ~= owner then
        redis.call('HSET', members, nick, owner)
        append(room, join_json(node, split(owner)[2], nick))
      end
    end
    if next(want) then
      redis.call('SADD', P .. 'node:' .. node .. ':rooms', room)
      redis.call('SADD', P .. 'rooms', room)
    elseif redis.call('HLEN', members) == 0 then
      forget_room(room)
    end
  end
  return lost

elseif op == 'since' then
  -- room, ID, most entries: the room's oldest kept ID ('' when none) and the entries after ID
  local log = P .. 'room:' .. ARGV[4] .. ':log'
  local first = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)
  local oldest = ''
  if first[1] then oldest = first[1][1] end
  return {oldest, redis.call('XRANGE', log, '(' .. ARGV[5], '+', 'COUNT', tonumber(ARGV[6]))}

elseif op == 'rooms' then
  -- every room with members anywhere: name, member count, topic ('' when none)
  local out = {}
  for _, room in ipairs(redis.call('SMEMBERS', P .. 'rooms')) do
    local topic = redis.call('GET', P .. 'room:' .. room .. ':topic')
    out[#out + 1] = {room, redis.call('HLEN', P .. 'room:' .. room .. ':members'), topic or ''}
  end
  return out
end

return redis.error_reply('ferry engine: unknown operation ' .. tostring(op))
