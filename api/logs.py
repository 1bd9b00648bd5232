"""Structured logs: key=value in development, one JSON object a line in production.

Every line about an event carries `event_id`: either passed per call
(`log.info(..., extra={"event_id": ...})`) or bound for a whole block with
`bind_event_id`, which also covers lines logged by code that does not know the id."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import structlog

from api.settings import Settings

# Loggers of libraries that log through their own handlers unless told otherwise.
_PROPAGATED = ("uvicorn", "uvicorn.error", "uvicorn.access", "dramatiq", "tortoise")


def _pre_chain() -> list[structlog.types.Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
    ]


def configure_logging(settings: Settings) -> None:
    """Route stdlib and structlog loggers through one formatter on stderr."""
    renderer: structlog.types.Processor
    if settings.production:
        renderer = structlog.processors.JSONRenderer()
        final: list[structlog.types.Processor] = [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # Tracebacks as data, without local variables: they may hold payloads or secrets.
            structlog.processors.ExceptionRenderer(structlog.tracebacks.ExceptionDictTransformer(show_locals=False)),
            renderer,
        ]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
        final = [structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer]
    handler = logging.StreamHandler()
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(processors=final, foreign_pre_chain=_pre_chain()))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for name in _PROPAGATED:
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    structlog.configure(
        processors=[
            *_pre_chain()[:-1],
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


@contextmanager
def bind_event_id(event_id: str) -> Iterator[None]:
    """Put `event_id` on every log line emitted in this block (this task or thread)."""
    with structlog.contextvars.bound_contextvars(event_id=event_id):
        yield
