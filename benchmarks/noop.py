"""The RQ baseline's job: does nothing, so the figure is RQ's own cost per job."""


def noop() -> None:
    return None
