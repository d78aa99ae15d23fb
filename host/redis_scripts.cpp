// The Lua scripts of a Redis queue (redis_source.hpp): each atomic step a
// spooler takes on the queue's keys, run with EVALSHA.
#include "redis_scripts.hpp"

namespace spoold {

// Moves the due delayed tasks of every stream (KEYS, in serving order)
// into their stream, then takes up to ARGV[4] entries from the first
// stream that has one, creating the group where it is missing. Nothing to
// take: the earliest delayed task's due time in ms, or -1.
const char* const k_take = R"lua(
local g, c, now, n = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
for _, s in ipairs(KEYS) do
  local due = redis.call('ZRANGEBYSCORE', s .. ':delayed', '-inf', now, 'LIMIT', 0, 100)
  for _, id in ipairs(due) do
    local k = s .. ':task:' .. id
    local f = redis.call('LRANGE', k, 0, -1)
    if #f > 0 then redis.call('XADD', s, '*', unpack(f)) end
    redis.call('DEL', k)
    redis.call('ZREM', s .. ':delayed', id)
  end
end
for _, s in ipairs(KEYS) do
  local r = redis.pcall('XREADGROUP', 'GROUP', g, c, 'COUNT', n, 'STREAMS', s, '>')
  if type(r) == 'table' and r.err then
    if string.find(r.err, 'NOGROUP', 1, true) ~= 1 then return r end
    redis.call('XGROUP', 'CREATE', s, g, '0', 'MKSTREAM')
    r = redis.call('XREADGROUP', 'GROUP', g, c, 'COUNT', n, 'STREAMS', s, '>')
  end
  if r then return r end
end
local next = -1
for _, s in ipairs(KEYS) do
  local first = redis.call('ZRANGE', s .. ':delayed', 0, 0, 'WITHSCORES')
  if #first > 0 and (next < 0 or tonumber(first[2]) < next) then next = tonumber(first[2]) end
end
return next
)lua";

const char* const k_ok = R"lua(
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
)lua";

// KEYS: the stream, its delayed zset, the task's list; ARGV: group, entry
// id, due ms, task id, the fields.
const char* const k_retry = R"lua(
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('DEL', KEYS[3])
redis.call('RPUSH', KEYS[3], unpack(ARGV, 5))
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
redis.call('SREM', KEYS[1] .. ':ignored', ARGV[2])
return 1
)lua";

// KEYS: the stream, the failed stream; ARGV: group, entry id, the fields.
const char* const k_fail = R"lua(
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('XADD', KEYS[2], '*', unpack(ARGV, 3))
redis.call('SREM', KEYS[1] .. ':ignored', ARGV[2])
return 1
)lua";

// KEYS: the stream; ARGV: group, entry id, the fields. An entry handed to
// a spooler that exits before starting it goes back to the stream's end,
// untouched, with no try counted.
const char* const k_release = R"lua(
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
return 1
)lua";

// KEYS: a stream, its ignored set, the key of the token of the last offer;
// ARGV: group, this consumer, the token (this host's start or reload). The
// first spooler of a host start or reload claims the entries no plugin
// took, to run them again; the others find the token set.
const char* const k_offer_ignored = R"lua(
if redis.call('GET', KEYS[3]) == ARGV[3] then return {} end
redis.call('SET', KEYS[3], ARGV[3])
local claimed = {}
while true do
  local ids = redis.call('SPOP', KEYS[2], 500)
  if #ids == 0 then break end
  for _, e in ipairs(redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, unpack(ids))) do
    claimed[#claimed + 1] = e
  end
end
return claimed
)lua";

// KEYS: a stream; ARGV: group, a dead consumer, this consumer. Claims what
// the dead one held and removes it once it holds nothing.
const char* const k_take_over = R"lua(
local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 100, ARGV[2])
local ids = {}
for i, e in ipairs(p) do ids[i] = e[1] end
local claimed = {}
if #ids > 0 then claimed = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, unpack(ids)) end
if #p < 100 then redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2]) end
return claimed
)lua";

}  // namespace spoold
