from jobqueue.backend import Backend, BackendOptions
from jobqueue.backends.memory import MemoryBackend
from jobqueue.testing import BackendContract


class TestMemoryBackend(BackendContract):
    def make_backend(self, options: BackendOptions) -> Backend:
        return MemoryBackend(options)
