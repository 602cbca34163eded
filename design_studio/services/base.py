"""What every service shares: the progress callback type and error translation."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable

from ..errors import InvalidRequest, ResourceExhausted, StudioError

ProgressFn = Callable[[float, str], None]


@contextmanager
def translate_errors():
    """Turn pipeline and torch errors into studio errors a designer can read."""
    from pipelines.errors import InvalidInput, OutOfMemory

    try:
        yield
    except StudioError:
        raise
    except InvalidInput as exc:
        raise InvalidRequest(str(exc)) from None
    except OutOfMemory as exc:
        raise ResourceExhausted(str(exc)) from None
    except RuntimeError as exc:
        if "out of memory" in str(exc).lower():
            raise ResourceExhausted(
                "the GPU ran out of memory; try fewer images, a smaller size, or the draft preset"
            ) from None
        raise
