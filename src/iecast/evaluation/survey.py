"""User-study kit (the paper's Table 1): static survey pages from an eval report, and answer scoring.

`make_survey` writes one offline HTML page per participant into a folder, with images copied
under opaque names (so a page does not reveal which method made what) and a `key.json` that
only the experimenter keeps. Each page has two parts:
- forced choice: for a content/style pair, pick the best of the methods' outputs;
- deception: is this image a real artwork? (a mix of outputs and real artworks).
Question and option order is shuffled per participant, reproducibly from `seed`.
Pages export answers as JSON or CSV; `score_survey` turns them into preference and deception scores.
"""
from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import math
import os
import random
import shutil
from pathlib import Path
from typing import Sequence

from iecast.errors import IecastError

SURVEY_FORMAT = "iecast-survey/1"
ANSWER_REAL = "real"
ANSWER_NOT_REAL = "not-real"


def _opaque(seed: int, text: str) -> str:
    return hashlib.sha256(f"{seed}:{text}".encode()).hexdigest()[:16]


def _read_report(report_path: Path) -> dict:
    try:
        report = json.loads(Path(report_path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise IecastError(f"{report_path}: no such file") from exc
    except (OSError, ValueError) as exc:
        raise IecastError(f"{report_path}: not a readable JSON report ({type(exc).__name__})") from exc
    if not isinstance(report, dict) or report.get("format", "").split("/")[0] != "iecast-eval-report":
        raise IecastError(f"{report_path}: not an iecast eval report (no 'format': 'iecast-eval-report/...')")
    return report


def wilson_interval(successes: int, trials: int, z: float = 1.959964) -> list[float] | None:
    """95% Wilson score interval of a proportion (None without trials)."""
    if trials == 0:
        return None
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return [max(0.0, centre - half), min(1.0, centre + half)]


def make_survey(report_path: str | os.PathLike, out_dir: str | os.PathLike, participants: int = 10, seed: int = 0,
                max_pairs: int | None = 12, outputs_per_method: int | None = 6, real_count: int | None = None,
                artworks: Sequence[str | os.PathLike] | None = None) -> dict:
    """Write participant_NN.html pages, index.html and key.json into `out_dir`; returns the key.

    Real artworks for the deception part default to the report's style images; pass
    `artworks` (image paths) to use artworks the participants have not seen as styles.
    """
    report_path = Path(report_path)
    report = _read_report(report_path)
    root = report_path.parent
    if participants < 1:
        raise IecastError(f"participants must be >= 1 (got {participants})")
    methods = report["methods"]
    rng = random.Random(seed)
    images: dict[str, Path] = {}

    def register(path: Path) -> str:
        if not path.is_file():
            raise IecastError(f"{path}: image referenced by {report_path} is missing")
        name = f"img/{_opaque(seed, str(path.resolve()))}{path.suffix.lower()}"
        images[name] = path
        return name

    pair_sets = [{(p["content"], p["style"]) for p in m["pairs"]} for m in methods]
    common = sorted(set.intersection(*pair_sets))
    chosen_pairs = rng.sample(common, min(len(common), max_pairs)) if max_pairs is not None else common
    contents = {c["name"]: root / c["image"] for c in report["contents"]}
    styles = {s["name"]: root / s["image"] for s in report["styles"]}
    outputs = {m["label"]: {(p["content"], p["style"]): root / p["output"] for p in m["pairs"]} for m in methods}

    forced = []
    if len(methods) >= 2:
        for i, (c, s) in enumerate(chosen_pairs):
            options = {f"o{j + 1}": {"method": m["label"], "image": register(outputs[m["label"]][(c, s)])} for j, m in enumerate(methods)}
            forced.append({"id": f"fc{i + 1}", "content": register(contents[c]), "style": register(styles[s]),
                           "pair": [c, s], "options": options})
    deception = []
    for m in methods:
        pool = sorted(outputs[m["label"]].items())
        picked = rng.sample(pool, min(len(pool), outputs_per_method)) if outputs_per_method is not None else pool
        deception += [{"source": m["label"], "image": register(path), "pair": list(pair)} for pair, path in picked]
    real_paths = [Path(a) for a in artworks] if artworks else sorted(styles.values())
    n_real = len(real_paths) if real_count is None else min(real_count, len(real_paths))
    deception += [{"source": "real", "image": register(p), "pair": None} for p in rng.sample(real_paths, n_real)]
    for i, item in enumerate(deception):
        item["id"] = f"rf{i + 1}"
    if not forced and not deception:
        raise IecastError(f"{report_path}: nothing to ask (no methods with outputs)")

    survey_id = _opaque(seed, json.dumps([forced, deception], sort_keys=True))
    key = {"format": SURVEY_FORMAT, "survey": survey_id, "seed": seed, "report": str(report_path),
           "methods": [m["label"] for m in methods], "forced_choice": forced, "deception": deception,
           "participants": [f"p{k + 1:02d}" for k in range(participants)]}
    _write_survey(Path(out_dir), images, key)
    return key


def _write_survey(out_dir: Path, images: dict[str, Path], key: dict) -> None:
    """The survey's files: its images under img/, one page per participant, index.html and key.json."""
    (out_dir / "img").mkdir(parents=True, exist_ok=True)
    for name, source in images.items():
        shutil.copyfile(source, out_dir / name)
    for participant in key["participants"]:
        page = survey_page(key, participant)
        (out_dir / f"participant_{participant}.html").write_text(page, encoding="utf-8")
    links = "".join(f'<li><a href="participant_{p}.html">{p}</a></li>' for p in key["participants"])
    (out_dir / "index.html").write_text(
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Survey</title></head><body>'
        f"<h1>Style-transfer survey</h1><p>Open your own page; each has its own order.</p><ul>{links}</ul></body></html>\n",
        encoding="utf-8")
    (out_dir / "key.json").write_text(json.dumps(key, indent=1), encoding="utf-8")


def participant_order(key: dict, participant: str) -> tuple[list[dict], list[list[str]], list[dict]]:
    """(forced-choice questions, option ids per question, deception items) in this participant's order."""
    rng = random.Random(f"{key['seed']}:{key['survey']}:{participant}")
    forced = list(key["forced_choice"])
    rng.shuffle(forced)
    option_orders = []
    for q in forced:
        ids = sorted(q["options"])
        rng.shuffle(ids)
        option_orders.append(ids)
    deception = list(key["deception"])
    rng.shuffle(deception)
    return forced, option_orders, deception


_SCRIPT = """
function collect(){var a=[];document.querySelectorAll('input[type=radio]:checked').forEach(function(r){
a.push({question:r.name,answer:r.value});});return a;}
function save(kind){var a=collect();var total=document.querySelectorAll('fieldset').length;
if(a.length<total&&!confirm((total-a.length)+' questions unanswered. Export anyway?'))return;
var text,type;if(kind==='json'){text=JSON.stringify({survey:SURVEY,participant:PARTICIPANT,answers:a},null,1);type='application/json';}
else{text='survey,participant,question,answer\\n'+a.map(function(x){return [SURVEY,PARTICIPANT,x.question,x.answer].join(',');}).join('\\n')+'\\n';type='text/csv';}
var link=document.createElement('a');link.href=URL.createObjectURL(new Blob([text],{type:type}));
link.download='answers_'+PARTICIPANT+'.'+kind;document.body.appendChild(link);link.click();link.remove();}
"""


def survey_page(key: dict, participant: str) -> str:
    """One participant's page: no network, answers exported as a downloaded file."""
    esc = html.escape
    forced, option_orders, deception = participant_order(key, participant)
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>Survey {esc(participant)}</title>",
             "<style>body{font-family:sans-serif;margin:1.5em;max-width:1100px}fieldset{margin:1em 0;border:1px solid #bbb}"
             "img{max-width:220px;max-height:220px;display:block;margin:4px}label{display:inline-block;vertical-align:top;margin:4px;cursor:pointer}"
             ".refs img{max-width:160px;max-height:160px}.refs{display:flex;gap:1em}</style>",
             "</head><body>", f"<h1>Style-transfer survey ({esc(participant)})</h1>"]
    if forced:
        parts.append("<h2>Part 1: which result is best?</h2><p>Each question shows a photo and a painting. "
                     "Pick the result that best repaints the photo in the painting's style.</p>")
        for n, (q, order) in enumerate(zip(forced, option_orders)):
            parts.append(f'<fieldset><legend>Question {n + 1}</legend><div class="refs">'
                         f'<div>photo<img src="{esc(q["content"])}" alt="photo"></div>'
                         f'<div>painting<img src="{esc(q["style"])}" alt="painting"></div></div>')
            for k, option_id in enumerate(order):
                parts.append(f'<label><input type="radio" name="{esc(q["id"])}" value="{esc(option_id)}"> result {k + 1}'
                             f'<img src="{esc(q["options"][option_id]["image"])}" alt="result {k + 1}"></label>')
            parts.append("</fieldset>")
    if deception:
        parts.append("<h2>Part 2: real artwork or not?</h2><p>Is each image an artwork made by a person?</p>")
        for n, item in enumerate(deception):
            parts.append(f'<fieldset><legend>Image {n + 1}</legend><img src="{esc(item["image"])}" alt="image {n + 1}">'
                         f'<label><input type="radio" name="{esc(item["id"])}" value="{ANSWER_REAL}"> real artwork</label>'
                         f'<label><input type="radio" name="{esc(item["id"])}" value="{ANSWER_NOT_REAL}"> not a real artwork</label></fieldset>')
    parts.append('<p><button type="button" onclick="save(\'json\')">Export answers (JSON)</button> '
                 '<button type="button" onclick="save(\'csv\')">Export answers (CSV)</button> '
                 "and send the downloaded file to the experimenter.</p>")
    parts.append(f"<script>var SURVEY={json.dumps(key['survey'])};var PARTICIPANT={json.dumps(participant)};{_SCRIPT}</script>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def read_answers(path: str | os.PathLike) -> list[dict]:
    """Answer rows {survey, participant, question, answer} from an exported JSON or CSV file."""
    path = Path(path)
    if not path.is_file():
        raise IecastError(f"{path}: no such file")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
            return [{"survey": data["survey"], "participant": data["participant"], "question": a["question"],
                     "answer": a["answer"]} for a in data["answers"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise IecastError(f"{path}: not a survey answer file ({type(exc).__name__}: {exc})") from exc
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        needed = {"survey", "participant", "question", "answer"}
        if not rows or not needed <= set(rows[0]):
            raise IecastError(f"{path}: a CSV answer file needs the columns {', '.join(sorted(needed))}")
        return [{k: r[k] for k in needed} for r in rows]
    raise IecastError(f"{path}: answers must be .json or .csv (got {path.suffix or 'no extension'})")


def score_survey(key_path: str | os.PathLike, answer_paths: Sequence[str | os.PathLike]) -> dict:
    """Preference (share of forced choices won) and deception (share judged a real artwork) per method.

    A participant's later file replaces an earlier one for the same question.
    """
    key_path = Path(key_path)
    try:
        key = json.loads(key_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IecastError(f"{key_path}: not a readable survey key ({type(exc).__name__})") from exc
    if key.get("format") != SURVEY_FORMAT:
        raise IecastError(f"{key_path}: not an iecast survey key")
    if not answer_paths:
        raise IecastError("no answer files given")
    forced = {q["id"]: q for q in key["forced_choice"]}
    deception = {d["id"]: d for d in key["deception"]}
    answers: dict[tuple[str, str], str] = {}
    for path in answer_paths:
        for row in read_answers(path):
            if row["survey"] != key["survey"]:
                raise IecastError(f"{path}: answers are for survey {row['survey']!r}, not {key['survey']!r} ({key_path})")
            q, a = row["question"], row["answer"]
            if q in forced and a not in forced[q]["options"]:
                raise IecastError(f"{path}: question {q} has no option {a!r}")
            if q in deception and a not in (ANSWER_REAL, ANSWER_NOT_REAL):
                raise IecastError(f"{path}: question {q} needs {ANSWER_REAL!r} or {ANSWER_NOT_REAL!r} (got {a!r})")
            if q not in forced and q not in deception:
                raise IecastError(f"{path}: unknown question {q!r}")
            answers[(row["participant"], q)] = a
    chosen = {m: 0 for m in key["methods"]}
    forced_answers = 0
    judged = {m: [0, 0] for m in [*key["methods"], "real"]}
    for (_, q), a in answers.items():
        if q in forced:
            chosen[forced[q]["options"][a]["method"]] += 1
            forced_answers += 1
        else:
            tally = judged[deception[q]["source"]]
            tally[0] += a == ANSWER_REAL
            tally[1] += 1
    preference = {m: {"chosen": n, "questions": forced_answers, "share": n / forced_answers if forced_answers else None,
                      "ci95": wilson_interval(n, forced_answers)} for m, n in chosen.items()}
    deception_scores = {m: {"judged_real": r, "shown": t, "score": r / t if t else None, "ci95": wilson_interval(r, t)}
                        for m, (r, t) in judged.items()}
    return {"survey": key["survey"], "participants": len({p for p, _ in answers}), "answers": len(answers),
            "preference": preference, "deception": deception_scores}


def format_scores(scores: dict) -> str:
    """The scores as a Markdown table."""
    lines = [f"{scores['participants']} participants, {scores['answers']} answers", "",
             "| method | preference | deception (judged real) |", "|---|---|---|"]
    for m, d in scores["deception"].items():
        p = scores["preference"].get(m)
        pref = "-" if p is None or p["share"] is None else f"{p['share']:.3f} ({p['chosen']}/{p['questions']})"
        dec = "-" if d["score"] is None else f"{d['score']:.3f} ({d['judged_real']}/{d['shown']})"
        lines.append(f"| {m} | {pref} | {dec} |")
    return "\n".join(lines) + "\n"
