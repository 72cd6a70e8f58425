from jobqueue.backend import Backend, BackendOptions
from jobqueue.backends.memory import MemoryBackend
from jobqueue.testing import BackendContract
from jobqueue.testing.contract.apply import ApplyContract


class TestMemoryBackend(BackendContract):
    def make_backend(self, options: BackendOptions) -> Backend:
        return MemoryBackend(options)


class TestMemoryStore(ApplyContract):
    """The storage seam on the raw memory store (joins ``BackendContract`` once every
    built-in backend is on the seam)."""

    def make_backend(self, options: BackendOptions) -> Backend:
        return MemoryBackend(options)  # type: ignore[return-value]
