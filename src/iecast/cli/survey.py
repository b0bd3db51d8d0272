"""`iecast survey make|score`: a static user-study survey from an eval report, and its scoring."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from iecast.evaluation.survey import format_scores, make_survey, score_survey


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("survey", help="user-study kit: make survey pages, score exported answers")
    actions = p.add_subparsers(dest="survey_command", required=True)
    make = actions.add_parser("make", help="write one offline HTML page per participant from an eval report")
    make.add_argument("report", type=Path, help="report.json written by `iecast eval`")
    make.add_argument("-o", "--out", required=True, type=Path, help="survey folder (pages, images, key.json)")
    make.add_argument("--participants", type=int, default=10, help="number of participant pages (default 10)")
    make.add_argument("--seed", type=int, default=0, help="seed for sampling and per-participant order")
    make.add_argument("--pairs", type=int, default=12, help="forced-choice questions (content/style pairs, default 12)")
    make.add_argument("--outputs-per-method", type=int, default=6, help="outputs per method in the deception part")
    make.add_argument("--real", type=int, default=None, help="real artworks in the deception part (default all)")
    make.add_argument("--artworks", type=Path, nargs="*", default=None,
                      help="real artworks to use (default: the report's style images)")
    make.set_defaults(func=run_make)
    score = actions.add_parser("score", help="aggregate exported answers into preference and deception scores")
    score.add_argument("key", type=Path, help="key.json written by `iecast survey make`")
    score.add_argument("answers", type=Path, nargs="+", help="exported answer files (.json or .csv)")
    score.add_argument("--json", type=Path, default=None, help="also write the scores to this JSON file")
    score.set_defaults(func=run_score)


def run_make(args: argparse.Namespace) -> int:
    key = make_survey(args.report, args.out, participants=args.participants, seed=args.seed, max_pairs=args.pairs,
                      outputs_per_method=args.outputs_per_method, real_count=args.real, artworks=args.artworks)
    print(f"{len(key['forced_choice'])} forced-choice and {len(key['deception'])} real-or-not questions, "
          f"{len(key['participants'])} pages: {args.out / 'index.html'} (keep {args.out / 'key.json'} private)")
    return 0


def run_score(args: argparse.Namespace) -> int:
    scores = score_survey(args.key, args.answers)
    print(format_scores(scores), end="")
    if args.json is not None:
        args.json.write_text(json.dumps(scores, indent=1), encoding="utf-8")
    return 0
