-- ferry's cluster engine: every change to shared chat state, each one atomic, in one script.
--
-- ARGV[1] is the operation, ARGV[2] the stream length kept per room, ARGV[3] the age (ms) an
-- entry is kept; the rest depend on the operation. Keys are built here from their names
-- (one Redis, not Redis Cluster: see cluster/keys.rs for the layout).
--
-- Every change a room's members must see is appended to the room's stream and published on
-- the room's channel as "ID JSON" in the same step, so the stream's order is the one order
-- every server delivers in, and a server that missed messages reads them back by ID.

local P = 'ferry:'
local op = ARGV[1]
local maxlen = tonumber(ARGV[2])
local age = tonumber(ARGV[3])

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function append(room, json)
  local log = P .. 'room:' .. room .. ':log'
  local id = redis.call('XADD', log, 'MAXLEN', '~', maxlen, '*', 'j', json)
  redis.call('XTRIM', log, 'MINID', '~', (now_ms() - age) .. '-0')
  redis.call('PEXPIRE', log, age)
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
    if redis.call('HLEN', members) == 0 then
      redis.call('SREM', P .. 'rooms', room)
      redis.call('DEL', P .. 'room:' .. room .. ':topic')
    end
  end
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
  -- room, json
  return append(ARGV[4], ARGV[5])

elseif op == 'join' then
  -- room, node, pid, nick, json, history entries to scan
  local room, node, pid, nick = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
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
  if redis.call('HLEN', members) == 0 then
    redis.call('SREM', P .. 'rooms', room)
    redis.call('DEL', P .. 'room:' .. room .. ':topic')
  end
  return id

elseif op == 'topic' then
  -- room, json, topic ('' clears)
  local key = P .. 'room:' .. ARGV[4] .. ':topic'
  if ARGV[6] == '' then redis.call('DEL', key) else redis.call('SET', key, ARGV[6]) end
  return append(ARGV[4], ARGV[5])

elseif op == 'claim' then
  -- node, pid, skeleton, nick, force ('1' for the bot, whose lease decides)
  local node, pid, skel, nick = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
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
  -- skeleton, message: published to the holder's server as "PID MESSAGE"; 0 when no one
  -- holds the nick (or its server is not listening)
  local held = redis.call('HGET', P .. 'nicks', ARGV[4])
  if not held then return 0 end
  local parts = split(held)
  return redis.call('PUBLISH', P .. 'node:' .. parts[1], parts[2] .. ' ' .. ARGV[5])

elseif op == 'heartbeat' then
  -- node, name, timeout ms
  redis.call('SET', P .. 'node:' .. ARGV[4], ARGV[5], 'PX', tonumber(ARGV[6]))
  redis.call('SADD', P .. 'nodes', ARGV[4])
  return false

elseif op == 'reap' then
  -- node (self): every other server whose heartbeat is gone is reaped; returns them
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
  for _, entry in ipairs(state.nicks) do
    local held = redis.call('HGET', P .. 'nicks', entry[1])
    local want = owner_of(node, tostring(entry[2])) .. ' ' .. entry[3]
    if held and string.sub(held, 1, #prefix) ~= prefix then
      lost[#lost + 1] = entry[3]
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
    for _, m in ipairs(list) do want[m[1]] = owner_of(node, tostring(m[2])) end
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
      redis.call('SREM', P .. 'rooms', room)
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
