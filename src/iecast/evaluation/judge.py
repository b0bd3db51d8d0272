"""Which encoder judges a comparison: by default one the compared models did not train with.

A model trained against an encoder's losses is favoured when the same encoder measures it, so
`iecast eval` picks, unless `--encoder` forces one, the first of `JUDGE_CANDIDATES` that no
compared iecast (or official) model names as its training encoder. The candidates are the
encoders that load offline; they are all the same ImageNet VGG-16 with different per-filter
scales, so the choice changes how the layers and filters are weighted in the losses (the
content loss normalises each channel, so it barely moves), not the network's features.
"""
from __future__ import annotations

from typing import Mapping

from iecast.errors import IecastError

JUDGE_CANDIDATES = ("vgg16-imagenet-offline-normalised", "vgg16-imagenet-offline-rms", "vgg16-imagenet-offline")


def choose_judge(trained_with: Mapping[str, str | None], forced: str | None = None,
                 candidates: tuple[str, ...] = JUDGE_CANDIDATES) -> dict:
    """The judge and why: {"encoder", "choice": "auto"|"forced", "trained_with", "favours", "reason"}.

    `trained_with` maps each compared method's label to the encoder its weights were trained
    with (None when unknown or not applicable: Gatys, folders, peers). `favours` lists the
    methods that trained with the judge (non-empty only when forced, or when every candidate
    is taken, in which case the first candidate is used and the reason says so).
    """
    if not candidates:
        raise IecastError("no judge encoder candidates")
    used = {label: enc for label, enc in trained_with.items() if enc}
    if forced is not None:
        favours = sorted(label for label, enc in used.items() if enc == forced)
        reason = f"`{forced}` forced with --encoder"
        if favours:
            reason += f"; {', '.join(f'`{f}`' for f in favours)} trained with it, which favours {'them' if len(favours) > 1 else 'it'}"
        elif used:
            reason += "; none of the compared models trained with it"
        return {"encoder": forced, "choice": "forced", "trained_with": dict(trained_with), "favours": favours, "reason": reason}
    taken = set(used.values())
    free = [c for c in candidates if c not in taken]
    trained_text = ", ".join(f"`{label}`: `{enc}`" for label, enc in used.items())
    if free:
        encoder, favours = free[0], []
        if used:
            reason = f"`{encoder}`, chosen automatically: no compared model trained with it (trained with: {trained_text})"
        else:
            reason = f"`{encoder}`, chosen automatically (no compared model names a training encoder)"
    else:
        encoder = candidates[0]
        favours = sorted(label for label, enc in used.items() if enc == encoder)
        reason = (f"`{encoder}`, chosen automatically, but every offline encoder trained one of the compared models "
                  f"({trained_text}); it favours {', '.join(f'`{f}`' for f in favours)}; pass --encoder to pick another")
    return {"encoder": encoder, "choice": "auto", "trained_with": dict(trained_with), "favours": favours, "reason": reason}
