from pathlib import Path

import pytest
import yaml

from probes import all_probes
from taxonomy import DEFAULT_TAXONOMY, TaxonomyError, load_taxonomy


def _bundled() -> dict:
    return yaml.safe_load(DEFAULT_TAXONOMY.read_text())


def _write(tmp_path: Path, data: dict) -> Path:
    p = tmp_path / "tax.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def test_bundled_taxonomy_has_six_areas_and_21_risks() -> None:
    tax = load_taxonomy(known_probes=all_probes())
    assert len(tax.areas) == 6
    ids = [r.id for r in tax.risks()]
    assert len(ids) == 21 and ids[0] == "I.1" and ids[-1] == "VI.4"
    # every risk that is not manual has probes, every non-automated one has review questions
    for r in tax.risks():
        assert r.probes or r.automation.value == "manual"
        assert r.review_questions or r.automation.value == "automated"


def test_every_listed_probe_is_registered_and_every_probe_declares_known_risks() -> None:
    tax = load_taxonomy()
    risk_ids = {r.id for r in tax.risks()}
    for probe in all_probes().values():
        assert set(probe.risks) <= risk_ids, probe.id
        assert probe.description and probe.metric_specs and probe.version
        for rid in probe.risks:
            assert probe.id in tax.risk(rid).probes, f"{probe.id} claims {rid} but the taxonomy does not list it"


def test_unknown_probe_id_names_file_and_key_path(tmp_path: Path) -> None:
    data = _bundled()
    probes = data["areas"][2]["risks"][0]["probes"]
    probes.append("misinformation.nope")
    path = _write(tmp_path, data)
    with pytest.raises(TaxonomyError) as e:
        load_taxonomy(path, known_probes=all_probes())
    msg = str(e.value)
    key = f"areas[III].risks[III.1].probes[{len(probes) - 1}]"
    assert str(path) in msg and key in msg and "misinformation.nope" in msg
    assert "\n" not in msg


def test_duplicate_risk_id(tmp_path: Path) -> None:
    data = _bundled()
    data["areas"][0]["risks"][1]["id"] = "I.1"
    with pytest.raises(TaxonomyError, match=r"areas\[I\]\.risks\[I\.1\]\.id: duplicate id 'I.1'"):
        load_taxonomy(_write(tmp_path, data))


def test_missing_field(tmp_path: Path) -> None:
    data = _bundled()
    del data["areas"][1]["risks"][2]["description"]
    with pytest.raises(TaxonomyError, match=r"areas\[II\]\.risks\[II\.3\]\.description: missing required field"):
        load_taxonomy(_write(tmp_path, data))


def test_bad_enum(tmp_path: Path) -> None:
    data = _bundled()
    data["areas"][3]["risks"][0]["automation"] = "sometimes"
    with pytest.raises(TaxonomyError, match=r"areas\[IV\]\.risks\[IV\.1\]\.automation: .*'sometimes'"):
        load_taxonomy(_write(tmp_path, data))


def test_automated_risk_without_probes_is_refused(tmp_path: Path) -> None:
    data = _bundled()
    data["areas"][2]["risks"][0]["probes"] = []
    with pytest.raises(TaxonomyError, match="automation is 'automated' but no probes are listed"):
        load_taxonomy(_write(tmp_path, data))


def test_unknown_crosswalk_id(tmp_path: Path) -> None:
    data = _bundled()
    data["areas"][0]["risks"][0]["crosswalk"]["nist_ai_600_1"] = ["harmful_bias"]
    with pytest.raises(TaxonomyError, match=r"crosswalk\.nist_ai_600_1: unknown id 'harmful_bias'"):
        load_taxonomy(_write(tmp_path, data))


def test_malformed_yaml_names_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("name: x\nareas: [\n  - id: I\n")
    with pytest.raises(TaxonomyError, match=r"bad\.yaml: line \d+, column \d+: malformed YAML"):
        load_taxonomy(p)


def test_yaml_tags_are_not_executed(tmp_path: Path) -> None:
    p = tmp_path / "evil.yaml"
    p.write_text("!!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(TaxonomyError, match="malformed YAML"):
        load_taxonomy(p)
