"""core.signoff's gate lookup (issue 5 additions) as the INT8 export uses it."""

from __future__ import annotations

import pytest

from core.signoff import (
    QA_NATURAL_SCENES,
    SceneVerdict,
    default_quantization,
    find_accepting_record,
    make_record,
    normalize_model_hash,
    quantization_hash,
    required_scenes,
    write_record,
)
from core.simulate.scenes import scene_names

HASH = "ab" * 32


def _record(folder, *, model=HASH, mode="int8", verdicts=None, reviewer="R", date=None):
    scenes = required_scenes()
    verdicts = verdicts or {}
    rec = make_record(
        reviewer,
        model,
        default_quantization(mode),
        [SceneVerdict(s, verdicts.get(s, "approved")) for s in scenes],
        date=date,
    )
    return write_record(rec, folder)


def test_required_scenes_are_the_qa_set():
    scenes = required_scenes()
    assert scenes[: len(QA_NATURAL_SCENES)] == QA_NATURAL_SCENES
    assert set(scene_names("pattern")) <= set(scenes)
    assert len(scenes) == len(set(scenes)) == 10


def test_default_quantization_is_stable_and_distinct():
    a, b = default_quantization("int8"), default_quantization("w8a8")
    assert a["mode"] == "int8" and "activations" not in a
    assert b["activations"]["granularity"] == "per_tensor"
    assert quantization_hash(a) != quantization_hash(b)
    assert quantization_hash(a) == quantization_hash(default_quantization("int8"))
    with pytest.raises(ValueError, match="int8, w8a8"):
        default_quantization("int4")


def test_hash_prefix_is_normalized():
    assert normalize_model_hash(f"sha256:{HASH.upper()}") == HASH == normalize_model_hash(HASH)


def test_accepting_record_is_found(tmp_path):
    path = _record(tmp_path, model=f"sha256:{HASH}")
    found, reasons = find_accepting_record(tmp_path, HASH, default_quantization("int8"))
    assert found is not None and found[0] == path and reasons == []


def test_refusals_name_what_is_missing(tmp_path):
    found, reasons = find_accepting_record(tmp_path / "none", HASH, default_quantization("int8"))
    assert found is None and "no sign-off records" in reasons[0]
    _record(tmp_path, verdicts={"zone_plate": "rejected"}, date="2025-01-01T00:00:00+00:00")
    _record(tmp_path, model="cd" * 32, date="2025-01-02T00:00:00+00:00")
    (tmp_path / "signoff_broken.json").write_text("{")
    found, reasons = find_accepting_record(tmp_path, HASH, default_quantization("int8"))
    assert found is None
    # the closest readable record (right model, one scene rejected) is reported
    assert len(reasons) == 1 and "zone_plate: rejected" in reasons[0]
    found, reasons = find_accepting_record(tmp_path, HASH, default_quantization("w8a8"))
    assert found is None and any("different quantization config" in r for r in reasons)
