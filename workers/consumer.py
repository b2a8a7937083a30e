"""The workers' Celery consumer: Celery's own, made to survive losing Redis while it holds a task.

Celery 5.7.0 tears a lost broker connection down in two steps: `collect()`, which detaches the
connection's transport from its client (the broker's address), then `close()`. When Redis goes
away while the consumer's channel waits in a BRPOP and a task is unacknowledged (one running, or
reserved for the next free process), the first step stops half-way (draining the BRPOP meets the
dead socket), so the second closes the channel again and tries to requeue the unacknowledged
message through the detached transport: an AttributeError, which Celery calls "Unrecoverable"
and exits the worker on. The task still running acknowledges through that channel when it ends,
later, and meets the same AttributeError. A Redis restart stopped every busy worker
(tests/faults/test_redis_restart.py).

Here, when that happens, the handler runs once more: the consumer has dropped its connection by
then, so the second pass skips the teardown and does the rest (prefetch bookkeeping), and the
consumer reconnects as after any lost connection. The lost connection's transport gets its
client back, so a task of that connection acknowledges through a new Redis connection when it
ends (or logs that it could not, if Redis is still away: a connection error, which Celery
handles). Nothing is lost: an unacknowledged message stays in Redis and comes back after the
visibility timeout (`celery_app.VISIBILITY_TIMEOUT_S`); the scan watchdog re-sends a lost step
sooner.
"""

from __future__ import annotations

from celery.worker.consumer import Consumer


class ReconnectingConsumer(Consumer):
    """`worker_consumer` of the workers' Celery app (`celery_app.celery_config`)."""

    def on_connection_error_after_connected(self, exc: Exception) -> None:
        transport = self.connection.transport if self.connection is not None else None
        client = transport.client if transport is not None else None
        try:
            super().on_connection_error_after_connected(exc)
        except AttributeError:
            if self.connection is not None:
                raise  # not the half-closed channel described above
            super().on_connection_error_after_connected(exc)
        finally:
            if transport is not None and transport.client is None:
                transport.client = client
