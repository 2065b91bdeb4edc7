"""The Redis bus's names and scripts: keys, channels, and the Lua run on each Redis.

With several Redis instances (`REDIS_URL` a list: partitions), every name below exists on each
of them; a user's notifications live on one (`partition_of`), broadcasts on all of them.
"""

from __future__ import annotations

import zlib

EPOCH_KEY = "notify:epoch"
SEQ_KEY = "notify:seq"
BROADCAST_KEY = "notify:broadcast"
INSTANCES_KEY = "presence:instances"
BROADCAST_CHANNEL = "broadcast:notifications"
USER_PATTERN = "notifications:*"
TASK_PATTERN = "task_progress:*"
TASK_TTL = 3600
SEQ_JUMP = 100_000  # see PUBLISH_LUA
# A lost subscription is retried at least once a second: cheap, and delivery resumes about a
# second after Redis does (with a 5 s cap, one restart took 2.3 s before the first delivery).
RESUBSCRIBE_MAX_DELAY = 1.0
BUS_CLIENT = "notify-bus"  # Redis client names, followed by the server's pid
FEED_CLIENT = "notify-sse"


def user_channel(user_id: str) -> str:
    return f"notifications:{user_id}"


def task_channel(task_id: str) -> str:
    return f"task_progress:{task_id}"


def archive_key(user_id: str) -> str:
    return f"notify:archive:{user_id}"


def presence_key(instance: str) -> str:
    return f"presence:{instance}"


# ARGV: record body (JSON object without id), channel, archive size, epoch, highest seq seen,
# the jump after an empty restart, and an id given by the caller ("" for `<epoch>-<seq>`). A
# record whose id does not carry its seq (a broadcast on partitions: one id on every partition)
# is stored and published as `<seq>|<record>`. A Redis that restarted empty gets the epoch back
# and a sequence that never goes backwards: it jumps past the highest this instance saw by SEQ_JUMP,
# because another instance may have published ids this one never saw (their PUBLISH died with
# Redis), and an id must never be given twice.
PUBLISH_LUA = """
local epoch = redis.call('GET', KEYS[2])
local floor = tonumber(ARGV[5])
if not epoch then
  epoch = ARGV[4]
  redis.call('SET', KEYS[2], epoch)
  floor = floor + tonumber(ARGV[6])
end
local seq = redis.call('INCR', KEYS[1])
if seq <= floor then
  seq = floor + 1
  redis.call('SET', KEYS[1], seq)
end
local rec
if ARGV[7] == '' then
  rec = '{"id":"' .. epoch .. '-' .. seq .. '",' .. string.sub(ARGV[1], 2)
else
  rec = seq .. '|{"id":"' .. ARGV[7] .. '",' .. string.sub(ARGV[1], 2)
end
redis.call('RPUSH', KEYS[3], rec)
redis.call('LTRIM', KEYS[3], -tonumber(ARGV[3]), -1)
redis.call('PUBLISH', ARGV[2], rec)
return rec
"""

TASK_EVENT_LUA = """
redis.call('HSET', KEYS[1], 'latest', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[2], ARGV[1])
"""

ACQUIRE_LUA = """
local total = 0
for _, inst in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local n = redis.call('HGET', 'presence:' .. inst, ARGV[1])
  if n then total = total + tonumber(n) end
end
if total >= tonumber(ARGV[2]) then return 0 end
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
"""

RELEASE_LUA = """
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -tonumber(ARGV[2]))
if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return n
"""
BROADCAST_EPOCH_KEY = "notify:broadcast-epoch"  # partitions: broadcast ids, on the first one
BROADCAST_COUNT_KEY = "notify:broadcast-count"


def partition_of(user_id: str, partitions: int) -> int:
    """The Redis a user's notifications live on: the same at every instance, for any user."""
    return zlib.crc32(user_id.encode()) % partitions
