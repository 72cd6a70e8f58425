"""Kue (Node; the original engine of the project's Node ancestor): ``queue.create(type,
data).save()`` one by one (no bulk API), from ``bench/node/kue_submit.js``;
``queue.process(type, 1, fn)`` in ``bench/node/kue_worker.js``, defaults otherwise (job events
on, search off, done jobs kept). Its Redis client is node_redis 2.6; the body's is ioredis."""

from __future__ import annotations

from peers.node_peer import NodeAdapter


class KueAdapter(NodeAdapter):
    name = "kue"
    label = "Kue (Node), concurrency=1"
    package = "kue"
    submit_script = "kue_submit.js"
    worker_script = "kue_worker.js"
