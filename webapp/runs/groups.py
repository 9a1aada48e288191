def run_group(run_id: int) -> str:
    """The channel-layer group that live events of a run are broadcast to."""
    return f"run.{run_id}"
