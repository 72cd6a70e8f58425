-- Job ids and sequence numbers (enqueue, claim and finishing order), taken ahead in blocks
-- where a call needs several.
--
-- reserved_seq, a sequence number taken ahead: complete+claim takes the finish's and the
-- next one with one INCRBY; the next next_seq() call uses it, so every number is the one
-- INCR would have given.

-- The next number of a block taken ahead (reserve_numbers, reserve_seqs), or INCR of `key`
-- when none is left.
local function draw(block, key)
  if block and block[1] <= block[2] then
    block[1] = block[1] + 1
    return block[1] - 1
  end
  return redis.call('INCR', key)
end

-- Up to `n` sequence numbers for a call's steps, taken with one INCRBY (next_seq draws from
-- them; the unused ones are a gap, which orders nothing differently).
local function reserve_seqs(n)
  if n < 2 then return end
  local top = redis.call('INCRBY', K_SEQ, n)
  seq_block = {top - n + 1, top}
end

-- The next sequence number (the reserved one first).
local function next_seq()
  local seq = reserved_seq
  if seq then
    reserved_seq = nil
    return seq
  end
  return draw(seq_block, K_SEQ)
end

-- Ids for the next `n` jobs, one block per call: the first is max(counter + 1, the server's
-- TIME in microseconds), so a replica promoted before it caught up (or a restored backup)
-- jumps past every id its predecessor acknowledged -- as long as the failover took longer
-- than the clock difference between the two hosts. Ids stay below 2^53 (exact as Lua
-- numbers) until the year 2255. A counter still at 0 means the namespace's first job ever:
-- every job it will hold is counted by name (K_COUNTED).
local function reserve_ids(n)
  local t = redis.call('TIME')
  local floor = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local top = redis.call('INCRBY', P .. 'id', n)
  if top == n then redis.call('SET', K_COUNTED, '1') end
  if top - n + 1 < floor then
    top = floor + n - 1
    redis.call('SET', P .. 'id', string.format('%d', top))
  end
  id_block = {top - n + 1, top}
end

-- The next id of the call's block (a block of one when none is left), as decimal text
-- (tostring would print a 16-digit number as 1.7966016001235e+15).
local function next_id()
  if not (id_block and id_block[1] <= id_block[2]) then reserve_ids(1) end
  id_block[1] = id_block[1] + 1
  return string.format('%d', id_block[1] - 1)
end

-- Ids and sequence numbers for the `n` jobs a submit call is about to store, taken with one
-- INCRBY each instead of an INCR per job; store_job draws from them. A job deduplicated onto
-- a live one leaves its numbers unused: ids stay unique and increasing, with a gap.
local function reserve_numbers(n)
  reserve_ids(n)
  if n < 2 then return end
  reserve_seqs(n)
end
