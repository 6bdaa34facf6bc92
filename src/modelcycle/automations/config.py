"""``[automations]`` of ``modelcycle.toml``, validated once when ``ws.automations`` is built."""

from __future__ import annotations

from pydantic import Field

from modelcycle.settings import SectionModel

__all__ = ["AutomationsSection"]


class AutomationsSection(SectionModel):
    """``[automations]``: how the job queue retries."""

    # First retry delay of a failed job; it doubles at each further attempt.
    backoff_seconds: float = Field(default=5.0, ge=0)
