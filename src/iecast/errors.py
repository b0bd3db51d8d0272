"""The one exception type users see: a clear, one-line message."""


class IecastError(Exception):
    """A user-facing error whose message is a single line naming the file and the problem."""


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether an exception is an allocation failure (Python's, or torch's CPU / CUDA allocator)."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(
        marker in text for marker in ("out of memory", "not enough memory", "can't allocate memory", "failed to allocate"))
