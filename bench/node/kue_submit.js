// Kue producer for the benchmark: queue.create(type, data).save() one by one (Kue has no bulk
// API); defaults otherwise. Driven by bench/peers/kue_adapter.py over stdin/stdout.
'use strict';

const kue = require('kue');
const { REDIS_URL, serve } = require('./common');

const queue = kue.createQueue({ redis: REDIS_URL });
queue.on('error', (err) => console.error(err));

function submit(data) {
  return new Promise((resolve, reject) => {
    queue.create('task', data).save((err) => (err ? reject(err) : resolve()));
  });
}

function close() {
  return new Promise((resolve) => queue.shutdown(1000, () => resolve()));
}

queue.client.once('ready', () => serve({ submit, close }));
