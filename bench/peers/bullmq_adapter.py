"""BullMQ (Node; the successor of Bull, the engine of the project's Node ancestor):
``Queue.add`` one by one, ``Queue.addBulk`` in bulk, from ``bench/node/bullmq_submit.js``; one
``Worker`` at concurrency 1 (its default), defaults otherwise (``removeOnComplete`` off: done
jobs stay in Redis), in ``bench/node/bullmq_worker.js``. Its Redis client is ioredis."""

from __future__ import annotations

from peers.node_peer import NodeAdapter


class BullmqAdapter(NodeAdapter):
    name = "bullmq"
    label = "BullMQ (Node), concurrency=1"
    package = "bullmq"
    bulk_api = "addBulk"
    submit_script = "bullmq_submit.js"
    worker_script = "bullmq_worker.js"
