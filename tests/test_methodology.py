"""The methodology file: the shipped version is valid; broken files fail with precise errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from opmetrics import methodology
from opmetrics.methodology import MethodologyError


def _write(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load(methodology.default_path().read_text())
    mutate(data)
    p = tmp_path / "m.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_shipped_methodology_matches_the_seeds():
    m = methodology.load()
    assert m.cpm("CPM1").target == 99.0 and m.cpm("CPM1").minimum == 96.0  # 003 CPM table
    assert m.alerts.trt_seconds == 60  # 001 l.3442 "within 60 seconds measured"
    assert m.process("prepayment").srvs == ["1.6", "2.1", "2.2"]  # 001 Table 4
    assert not m.process("install_commission").smets1
    assert 1 not in m.report_status.included and 34 in m.report_status.included
    assert {"E20", "E21"} <= set(m.codes("failure_dcc"))  # 001 l.309 "Communications Failure"
    assert m.category_of("I0") == "success" and m.category_of("I99") == "acknowledgement"
    assert m.category_of("E4") == "failure_outside"  # 001 l.984 "it will result in an E4"
    assert m.category_of("E999") == "other"  # an unlisted code is never a success
    assert len(m.fingerprint) == 64


def test_unknown_srv_in_process_is_named(tmp_path):
    p = _write(tmp_path, lambda d: d["processes"][0]["srvs"].append("99.9"))
    with pytest.raises(MethodologyError, match=r"install_commission.*\['99.9'\]") as e:
        methodology.load(p)
    assert str(p) in str(e.value)


def test_minimum_above_target_is_refused(tmp_path):
    def bad(d):
        d["cpms"][0]["minimum"] = 99.5

    with pytest.raises(MethodologyError, match="CPM1: minimum 99.5 is above target 99.0"):
        methodology.load(_write(tmp_path, bad))


def test_unknown_key_and_bad_mode_are_located(tmp_path):
    def bad(d):
        d["speed"]["typo_setting"] = True
        d["srvs"][0]["trt"]["sometimes"] = 5

    with pytest.raises(MethodologyError) as e:
        methodology.load(_write(tmp_path, bad))
    msg = str(e.value)
    assert "speed.typo_setting" in msg and "srvs.0.trt.sometimes" in msg


def test_not_yaml_and_missing_file(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("version: [unclosed")
    with pytest.raises(MethodologyError, match="not valid UTF-8 YAML"):
        methodology.load(p)
    with pytest.raises(MethodologyError, match="cannot read"):
        methodology.load(tmp_path / "nope.yaml")


def test_changing_a_trt_changes_the_fingerprint_and_trt_table(tmp_path):
    def faster(d):
        d["version"] = "2026.1-test"
        d["trt_defaults_seconds"]["on-demand"] = 20

    m2 = methodology.load(_write(tmp_path, faster))
    assert m2.fingerprint != methodology.load().fingerprint
    assert m2.trt_defaults_seconds["on-demand"] == 20


def test_smets1_trt_override_for_activate_firmware():
    rows = {(r["srv"], r["smets"], r["mode"]): r["trt_s"] for r in methodology.load().trt_rows()}
    assert rows[("11.3", 1, "on-demand")] == 5 * 86400  # SMETS1 five-day TRT (001 Table 4)
    assert rows[("11.3", 2, "on-demand")] == 30


def test_measure_catalogue_doc_is_current(meth):
    from pathlib import Path

    from opmetrics.methodology import catalogue_markdown

    doc = Path(__file__).parent.parent / "docs" / "measures.md"
    assert doc.read_text(encoding="utf-8") == catalogue_markdown(meth), "run `make docs`"
    for cid in ("CPM1", "CPM5", "CPM5A", "CPM6", "CPM6A", "CPM6B", "CPM6C", "CPM7", "CPM8", "CPM9"):
        assert f"| {cid} |" in doc.read_text(encoding="utf-8")


def test_attribution_rule_must_name_its_srvs(tmp_path):
    import yaml

    from opmetrics.methodology import MethodologyError, default_path, load

    data = yaml.safe_load(default_path().read_text())
    cos = next(p for p in data["processes"] if p["id"] == "change_of_supplier")
    cos["attribution"]["anchor_srv"] = "9.9"
    bad = tmp_path / "m.yaml"
    bad.write_text(yaml.safe_dump(data))
    try:
        load(bad)
    except MethodologyError as e:
        assert "change_of_supplier" in str(e) and "9.9" in str(e)
    else:
        raise AssertionError("an anchor SRV outside the process was accepted")


def test_definitions_doc_is_current_and_covers_every_measure(meth):
    """docs/definitions.md is generated from the methodology (and the committed what-if
    comparison); every CPM, outcome measure and deviation has its section or row."""
    from pathlib import Path

    from opmetrics.methodology import definitions

    docs = Path(__file__).parent.parent / "docs"
    text = (docs / "definitions.md").read_text(encoding="utf-8")
    assert text == definitions.markdown(meth, docs / "what-if-2026.4-2027.1.md"), "run `make docs`"
    for c in meth.cpms:
        assert f"### {c.id}: " in text
    for x in meth.measures:
        assert f"### {x.id} (" in text
    for d in meth.deviations:
        assert f"| `{d.id}` | {d.kind} |" in text
    assert "## What changed between versions" in text


def test_every_deviation_names_a_setting_that_exists_and_restores_another_value(meth):
    """A deviation's `restore` is `path: value`: the path is a setting of the methodology (as
    `what-if` names settings) whose value today is not the one that restores the seed."""
    from opmetrics.measures.whatif import settings_of

    settings = settings_of(meth)
    deviations = [d for d in meth.deviations if d.kind == "deviation"]
    assert len(deviations) >= 3
    for d in deviations:
        path, value = (x.strip() for x in d.restore.split(":", 1))
        assert path in settings, d.id
        assert str(settings[path]).lower() != value.lower(), d.id


def _unread_settings(model: type, source: str) -> list[str]:
    """Fields of a methodology model (and of the models inside it) that no code reads: neither
    as an attribute (`.name`) nor by key (`"name"`)."""
    import re
    import typing

    from pydantic import BaseModel

    seen: set[type] = set()
    unread: list[str] = []

    def models(annotation: object) -> typing.Iterator[type]:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield annotation
            return
        for arg in typing.get_args(annotation):
            yield from models(arg)

    def walk(m: type) -> None:
        if m in seen:
            return
        seen.add(m)
        for name, f in m.model_fields.items():  # type: ignore[attr-defined]
            if not re.search(rf"\.{re.escape(name)}\b|[\"']{re.escape(name)}[\"']", source):
                unread.append(f"{m.__name__}.{name}")
            for inner in models(f.annotation):
                walk(inner)

    walk(model)
    return unread


def test_every_methodology_setting_is_read_by_the_code():
    """A setting no code reads changes nothing when an analyst edits it (issue 35's hygiene:
    four were found). Tamper: a model with a field nobody reads is caught."""
    from pathlib import Path

    from pydantic import BaseModel

    import opmetrics
    from opmetrics.methodology import Methodology

    root = Path(opmetrics.__file__).parent
    source = "\n".join(p.read_text(encoding="utf-8") for p in root.rglob("*.py"))
    assert _unread_settings(Methodology, source) == []

    class Tampered(BaseModel):
        version: str
        zz_setting_nobody_reads: int

    assert _unread_settings(Tampered, source) == ["Tampered.zz_setting_nobody_reads"]
