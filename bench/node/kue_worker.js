// Kue worker for the benchmark: queue.process(type, 1, fn), concurrency 1, defaults otherwise,
// running the shared body (common.run) on each job's data.
'use strict';

const kue = require('kue');
const { REDIS_URL, run } = require('./common');

const queue = kue.createQueue({ redis: REDIS_URL });
queue.on('error', (err) => console.error(err));
queue.process('task', 1, (job, done) => {
  run(job.data).then(() => done(), done);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => queue.shutdown(1000, () => process.exit(0)));
}
