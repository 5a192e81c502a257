"""A fixed number of workers that share one stream of jobs: discovery's tag listers and
the planned crawl's repository workers.

Each worker gets its own clone of the job stream's receive side and of the
results' send side, so the results stream closes when the last worker is done;
the caller feeds the jobs and, on leaving the block, the job stream closes and
the workers drain it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from anyio.streams.memory import MemoryObjectSendStream

JobT = TypeVar("JobT")
ResultT = TypeVar("ResultT")


@asynccontextmanager
async def worker_group(
    worker: Callable[
        [ObjectReceiveStream[JobT], ObjectSendStream[ResultT]], Coroutine[Any, Any, None]
    ],
    results: MemoryObjectSendStream[ResultT],
    *,
    workers: int,
    buffer: int,
) -> AsyncIterator[tuple[MemoryObjectSendStream[JobT], anyio.CancelScope]]:
    """Start ``workers`` copies of ``worker``; yield the jobs' send side and the group's
    cancel scope (cancelling it ends the workers and the block); return when every
    worker has finished."""
    jobs_send, jobs_receive = anyio.create_memory_object_stream[JobT](buffer)
    async with anyio.create_task_group() as tg:
        async with jobs_receive:
            for _ in range(workers):
                tg.start_soon(worker, jobs_receive.clone(), results.clone())
        async with jobs_send:
            yield jobs_send, tg.cancel_scope
