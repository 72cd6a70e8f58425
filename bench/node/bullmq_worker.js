// BullMQ worker for the benchmark: one Worker at concurrency 1 (its default), defaults
// otherwise, running the shared body (common.run) on each job's data.
'use strict';

const { Worker } = require('bullmq');
const { redisOptions, run } = require('./common');

const worker = new Worker('bench', (job) => run(job.data), {
  connection: redisOptions(),
  concurrency: 1,
});
worker.on('error', (err) => console.error(err));
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => worker.close().finally(() => process.exit(0)));
}
