"""`iecast stylize --batch-size N`: the jobs of a folder run, contents of equal size stylized N at a time.

Each content is read (and resized) once; its jobs wait in a group per (styles, size) until the
group holds N, and every waiting group runs when N contents wait in all, so at most N contents
are held at once. A batch that fails (memory) is retried one content at a time, so a bad input
is reported on its own, as in the one-at-a-time run; results are the same up to float rounding.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from iecast.errors import IecastError
from iecast.images import save_image, tensor_to_pil
from iecast.inference.options import StylizeOptions

Failed = Callable[[Path, IecastError], None]


def stylize_in_batches(stylizer, work: list[tuple[Path, list[Path], Path]], ready: dict, options: StylizeOptions,
                       batch_size: int, failed: Failed, errors: dict, report: Callable[[Path], None]) -> int:
    """Run `work` ((content, styles, target) per job, in job order); returns how many results were written.
    `ready` maps style paths to their prepared styles; `failed` reports a bad input (recorded in `errors`),
    `report` each written file."""
    pending: dict[tuple, list[tuple[Path, object, Path]]] = {}
    loaded: tuple[Path | None, object] = (None, None)
    written = 0

    def run(key: tuple) -> None:
        nonlocal written
        items = [item for item in pending.pop(key) if item[0] not in errors]
        if items:
            written += _run_group(stylizer, items, [ready[s] for s in key[0]], options, batch_size, failed, report)

    for content, job_styles, target in work:
        if content in errors or any(s not in ready for s in job_styles):
            continue
        if loaded[0] != content:
            try:
                loaded = (content, stylizer.load_content(content, options))
            except IecastError as exc:
                failed(content, exc)
                continue
        key = (tuple(job_styles), tuple(loaded[1].shape[-2:]))
        pending.setdefault(key, []).append((content, loaded[1], target))
        if len(pending[key]) >= batch_size:
            run(key)
        elif sum(len(items) for items in pending.values()) >= batch_size:
            for waiting in list(pending):
                run(waiting)
    for waiting in list(pending):
        run(waiting)
    return written


def _run_group(stylizer, items: list, styles: list, options: StylizeOptions, batch_size: int, failed: Failed,
               report: Callable[[Path], None]) -> int:
    """One group of same-size contents with the same styles: in batches, or one at a time if that fails."""
    try:
        results = stylizer.stylize_batch([tensor for _, tensor, _ in items], styles, options, batch_size)
    except IecastError as exc:
        if len(items) == 1:
            failed(items[0][0], exc)
            return 0
        results = [None] * len(items)
    written = 0
    for (content, tensor, target), result in zip(items, results):
        def make(tensor=tensor, result=result):
            if result is None:  # the batch failed: this content alone, so its own error is the one reported
                result = stylizer.stylize(tensor, styles, options=options)
            return tensor_to_pil(result)
        written += write_result(content, target, make, failed, report)
    return written


def write_result(content: Path, target: Path, make: Callable[[], object], failed: Failed,
                 report: Callable[[Path], None]) -> int:
    """Saves the image `make()` returns to `target` and reports it: 1, or 0 when making or
    writing it failed (the error goes to `failed` under `content`)."""
    try:
        path = save_image(make(), target)
    except IecastError as exc:
        failed(content, exc)
        return 0
    report(path)
    return 1
