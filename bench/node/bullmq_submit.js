// BullMQ producer for the benchmark: Queue.add one by one, Queue.addBulk in bulk; defaults
// otherwise. Driven by bench/peers/bullmq_adapter.py over stdin/stdout (common.serve).
'use strict';

const { Queue } = require('bullmq');
const { redisOptions, serve } = require('./common');

const queue = new Queue('bench', { connection: redisOptions() });

queue.waitUntilReady().then(() =>
  serve({
    submit: (data) => queue.add('task', data),
    submitBulk: (payloads) => queue.addBulk(payloads.map((data) => ({ name: 'task', data }))),
    close: () => queue.close(),
  })
);
