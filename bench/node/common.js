// What the Node peers share: the job body (bench/body.py, reproduced exactly), a wall clock
// comparable to Python's time.time() with sub-millisecond resolution, and the submitters'
// line protocol with the harness (bench/peers/node_peer.py).
'use strict';

const { performance } = require('perf_hooks');
const readline = require('readline');
const Redis = require('ioredis');

const COUNTER = 'bench:count';
const MARKS = 'bench:marks';
const STARTS = 'bench:starts';
const INTERVALS = 'bench:intervals';

// The benchmark's private Redis, from the harness; never a default (6379) one.
const REDIS_URL = process.env.BENCH_REDIS_URL;
if (!REDIS_URL) throw new Error('BENCH_REDIS_URL is not set (the harness sets it)');

/** ioredis connection options for the benchmark's Redis: host, port and db of the URL. */
function redisOptions() {
  const url = new URL(REDIS_URL);
  return { host: url.hostname, port: Number(url.port), db: Number(url.pathname.slice(1) || 0) };
}

const MODE = process.env.BENCH_MODE || 'rate';
const TARGET = parseInt(process.env.BENCH_TARGET || '0', 10);
const STEP = parseInt(process.env.BENCH_STEP || '1000', 10);

// Date.now() is CLOCK_REALTIME (as time.time()) but only to the millisecond, and
// performance.timeOrigin can be off by milliseconds; so find the offset between the two at
// millisecond edges of Date.now(), kept only where the edge is pinned within 5 µs of
// performance.now() (no pause around it), and count with performance.now() from there.
function calibrate() {
  const found = [];
  let last = Date.now();
  let lastBefore = performance.now();
  const deadline = lastBefore + 200;
  while (found.length < 5 && performance.now() < deadline) {
    const before = performance.now();
    const wall = Date.now();
    const after = performance.now();
    if (wall !== last && after - lastBefore < 0.005) found.push(wall - (lastBefore + after) / 2);
    last = wall;
    lastBefore = before;
  }
  if (found.length === 0) return Date.now() - performance.now();
  found.sort((a, b) => a - b);
  return found[Math.floor(found.length / 2)];
}
const OFFSET_MS = calibrate();

/** Seconds since the epoch, as a float: the same clock as Python's time.time(). */
function now() {
  return (OFFSET_MS + performance.now()) / 1000;
}

let client = null;

/** The body: one INCR on the counter (sent as INCRBY 1, as redis-py sends it), then the
 * start-time records of bench/body.py, each command awaited in turn as redis-py does. */
async function run(data) {
  const started = now();
  if (client === null) client = new Redis(redisOptions());
  const n = await client.incrby(COUNTER, 1);
  if (MODE === 'latency') {
    await client.hset(STARTS, String(data.n), String(started));
  } else if (MODE === 'intervals') {
    await client.rpush(INTERVALS, `${started} ${now()}`);
  } else if (n % STEP === 0 || n % STEP === 1 || n === TARGET) {
    await client.rpush(MARKS, `${n} ${started}`);
  }
}

function sleep(seconds) {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, seconds * 1000)));
}

/** Submit each payload in turn (every `interval` seconds if given), awaiting each; return
 * each submit's wall-clock time, taken just before the call (as peers.Adapter.submit_each). */
async function submitEach(submit, payloads, interval) {
  const stamps = [];
  const start = performance.now();
  for (let index = 0; index < payloads.length; index++) {
    if (interval) {
      const delay = (start + index * interval * 1000 - performance.now()) / 1000;
      if (delay > 0) await sleep(delay);
    }
    stamps.push(now());
    await submit(payloads[index]);
  }
  return stamps;
}

/** The submitter side: one JSON request per line on stdin, one JSON answer per line on
 * stdout. Requests: {"op": "each", "payloads": [...], "interval": s} -> {"stamps": [...]},
 * {"op": "bulk", "payloads": [...]} -> {}, {"op": "close"} -> {} and exit. */
function serve({ submit, submitBulk, close }) {
  const answer = (value) => process.stdout.write(JSON.stringify(value) + '\n');
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  let queue = Promise.resolve();
  lines.on('line', (line) => {
    queue = queue.then(async () => {
      const request = JSON.parse(line);
      try {
        if (request.op === 'each') {
          answer({ stamps: await submitEach(submit, request.payloads, request.interval || 0) });
        } else if (request.op === 'bulk') {
          if (!submitBulk) throw new Error('no bulk API');
          await submitBulk(request.payloads);
          answer({});
        } else if (request.op === 'close') {
          await close();
          answer({});
          process.exit(0);
        } else {
          throw new Error(`unknown op ${request.op}`);
        }
      } catch (err) {
        answer({ error: String((err && err.stack) || err) });
      }
    });
  });
  lines.on('close', () => queue.then(close).then(() => process.exit(0)));
  answer({ ready: true });
}

module.exports = {
  run,
  now,
  serve,
  redisOptions,
  REDIS_URL,
  COUNTER,
  MARKS,
  STARTS,
  INTERVALS,
};
