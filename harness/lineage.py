"""One line on how a task's FT checkpoint was trained, read from its lineage dict (lineage.json, and
run.json's "finetune": task -> lineage), for logs and report notes.

Only the standard library and no harness imports: the pipeline logs it and the report notes it, and neither
needs the training code for that.
"""

from __future__ import annotations


def lineage_summary(task: str, lineage: dict) -> str:
    """`task: used of available <split> examples, steps, final loss, seconds; overlap found`."""
    train, overlap = lineage["train"], lineage["overlap"]
    found = (f"{overlap['found']} overlapping the eval split ({overlap['action']})" if overlap["found"]
             else "no overlap with the eval split")
    return (f"{task}: {train['used']} of {train['available']} {train['split']} examples, "
            f"{lineage['steps']} steps, final loss {lineage['final_loss']:.3f}, {lineage['seconds']:.0f} s; {found}")
