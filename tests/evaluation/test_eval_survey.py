"""User-study kit: survey pages from a report, per-participant order, answer scoring."""
from __future__ import annotations

import csv
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from iecast import IecastError
from iecast.cli import main
from iecast.evaluation.survey import make_survey, participant_order, score_survey, wilson_interval

METHODS = ("ours", "sanet", "gatys")


@pytest.fixture()
def report(tmp_path) -> Path:
    """A minimal eval report (2 contents x 2 styles x 3 methods) with real image files."""
    root = tmp_path / "eval"
    colours = iter(range(10, 250, 9))

    def image(rel: str) -> str:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (next(colours), 0, 0)).save(root / rel)
        return rel

    contents = [{"name": c, "source": c, "image": image(f"inputs/content/{c}.jpg")} for c in ("c1", "c2")]
    styles = [{"name": s, "source": s, "image": image(f"inputs/style/{s}.jpg")} for s in ("s1", "s2")]
    methods = [{"label": m, "pairs": [{"content": c["name"], "style": s["name"],
                                       "output": image(f"{m}/{c['name']}_stylized_{s['name']}.png")}
                                      for c in contents for s in styles]} for m in METHODS]
    path = root / "report.json"
    path.write_text(json.dumps({"format": "iecast-eval-report/1", "contents": contents, "styles": styles, "methods": methods}))
    return path


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.radios = [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a["src"])
        if tag == "input" and a.get("type") == "radio":
            self.radios.append((a["name"], a["value"]))


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def test_survey_pages_are_complete_blind_and_parse(report, tmp_path):
    out = tmp_path / "survey"
    key = make_survey(report, out, participants=3, seed=1, max_pairs=None, outputs_per_method=2)
    assert len(key["forced_choice"]) == 4 and len(key["deception"]) == 3 * 2 + 2
    assert sum(d["source"] == "real" for d in key["deception"]) == 2
    for participant in key["participants"]:
        page = parse(out / f"participant_{participant}.html")
        for src in page.images:
            assert (out / src).is_file(), src
            assert not any(m in src for m in METHODS)  # opaque names: the page does not reveal the method
        questions = {name for name, _ in page.radios}
        assert questions == {q["id"] for q in key["forced_choice"]} | {d["id"] for d in key["deception"]}
    assert parse(out / "index.html").images == []


def test_order_is_per_participant_and_reproducible(report, tmp_path):
    key = make_survey(report, tmp_path / "a", participants=4, seed=5, max_pairs=None)
    again = make_survey(report, tmp_path / "b", participants=4, seed=5, max_pairs=None)
    assert key == {**again, "report": key["report"]}
    orders = [participant_order(key, p) for p in key["participants"]]
    as_ids = [([q["id"] for q in f], o, [d["id"] for d in d_]) for f, o, d_ in orders]
    assert len({json.dumps(x) for x in as_ids}) > 1
    assert (tmp_path / "a" / "participant_p02.html").read_text() == (tmp_path / "b" / "participant_p02.html").read_text()
    for forced, option_orders, deception in orders:
        assert sorted(q["id"] for q in forced) == sorted(q["id"] for q in key["forced_choice"])
        assert all(sorted(o) == ["o1", "o2", "o3"] for o in option_orders)


def answers_for(key: dict, participant: str, pick: str, real_for: set[str]) -> list[dict]:
    """Simulated answers: always choose `pick`'s output; call items from `real_for` sources real."""
    rows = []
    for q in key["forced_choice"]:
        option = next(o for o, v in q["options"].items() if v["method"] == pick)
        rows.append({"question": q["id"], "answer": option})
    for d in key["deception"]:
        rows.append({"question": d["id"], "answer": "real" if d["source"] in real_for else "not-real"})
    return rows


def test_scores_from_json_and_csv_answers(report, tmp_path):
    out = tmp_path / "survey"
    key = make_survey(report, out, participants=3, seed=2, max_pairs=None, outputs_per_method=2)
    p1 = tmp_path / "answers_p01.json"
    p1.write_text(json.dumps({"survey": key["survey"], "participant": "p01",
                              "answers": answers_for(key, "p01", "ours", {"real", "ours"})}))
    p2 = tmp_path / "answers_p02.csv"
    with open(p2, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["survey", "participant", "question", "answer"])
        for row in answers_for(key, "p02", "sanet", {"real"}):
            writer.writerow([key["survey"], "p02", row["question"], row["answer"]])
    scores = score_survey(out / "key.json", [p1, p2])
    assert scores["participants"] == 2 and scores["answers"] == 2 * (4 + 8)
    assert scores["preference"]["ours"]["chosen"] == 4 and scores["preference"]["ours"]["share"] == 0.5
    assert scores["preference"]["sanet"]["share"] == 0.5 and scores["preference"]["gatys"]["share"] == 0.0
    assert scores["deception"]["ours"]["score"] == 0.5  # p01 said real to both of ours, p02 to neither
    assert scores["deception"]["real"]["score"] == 1.0 and scores["deception"]["gatys"]["score"] == 0.0
    assert scores["preference"]["ours"]["ci95"] == pytest.approx(wilson_interval(4, 8))


def test_wilson_interval_by_hand():
    low, high = wilson_interval(5, 10)
    assert (low + high) / 2 == pytest.approx(0.5)
    assert high - low == pytest.approx(2 * 1.959964 * (0.025 + 1.959964 ** 2 / 400) ** 0.5 / (1 + 1.959964 ** 2 / 10))
    assert wilson_interval(0, 0) is None


def test_bad_answers_are_one_line_errors(report, tmp_path):
    out = tmp_path / "survey"
    key = make_survey(report, out, participants=1, seed=0)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"survey": "other", "participant": "p01", "answers": []}))
    with pytest.raises(IecastError, match="no such file"):
        score_survey(out / "key.json", [tmp_path / "nope.json"])
    bad_option = tmp_path / "bad.json"
    bad_option.write_text(json.dumps({"survey": key["survey"], "participant": "p01",
                                      "answers": [{"question": key["forced_choice"][0]["id"], "answer": "o9"}]}))
    with pytest.raises(IecastError, match="has no option 'o9'"):
        score_survey(out / "key.json", [bad_option])
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"survey": "zzz", "participant": "p01", "answers": [{"question": "fc1", "answer": "o1"}]}))
    with pytest.raises(IecastError, match="answers are for survey 'zzz'"):
        score_survey(out / "key.json", [other])
    with pytest.raises(IecastError, match="not an iecast eval report"):
        make_survey(wrong, tmp_path / "s2")


def test_survey_cli(report, tmp_path, capsys):
    out = tmp_path / "survey"
    assert main(["survey", "make", str(report), "-o", str(out), "--participants", "2", "--pairs", "2"]) == 0
    key = json.loads((out / "key.json").read_text())
    answers = tmp_path / "a.json"
    answers.write_text(json.dumps({"survey": key["survey"], "participant": "p01",
                                   "answers": answers_for(key, "p01", "gatys", set())}))
    assert main(["survey", "score", str(out / "key.json"), str(answers), "--json", str(tmp_path / "s.json")]) == 0
    printed = capsys.readouterr().out
    assert "| gatys | 1.000 (2/2)" in printed
    assert json.loads((tmp_path / "s.json").read_text())["preference"]["gatys"]["share"] == 1.0
    assert main(["survey", "score", str(out / "key.json"), str(tmp_path / "missing.csv")]) == 1
    assert "no such file" in capsys.readouterr().err
