"""The pipeline runner's configuration handling (the end-to-end runs are in test_pipeline_e2e.py)."""

import pytest

from workbench import runner


def test_overrides_are_read_as_yaml_values():
    assert runner.parse_overrides(["k=20", "legal_entity=USRT", "algorithms=[sar, ease]", "start=", "flag=false"]) == {
        "k": 20,
        "legal_entity": "USRT",
        "algorithms": ["sar", "ease"],
        "start": "",
        "flag": False,
    }


@pytest.mark.parametrize("bad", ["legal_entity", "=3", "1abc=2", "x=[unclosed"])
def test_malformed_override_names_the_parameter(bad):
    with pytest.raises(runner.PipelineError, match="malformed"):
        runner.parse_overrides([bad])


def test_config_errors_name_the_file_and_the_problem(tmp_path):
    with pytest.raises(runner.PipelineError, match="does not exist"):
        runner.load_config(tmp_path / "nope.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("parameters: [1, 2\n")
    with pytest.raises(runner.PipelineError, match="not valid YAML"):
        runner.load_config(bad)
    bad.write_text("paramters:\n  legal_entity: X\n")
    with pytest.raises(runner.PipelineError, match=r"unknown key\(s\) \['paramters'\]"):
        runner.load_config(bad)


def test_stages_are_the_numbered_notebooks_in_order():
    stages = runner.discover_stages()
    assert [s.label for s in stages] == ["01_extract", "02_cleanse", "03_train", "04_evaluate"]
    assert [s.label for s in runner.select_stages(stages, ["cleanse", "01_extract"])] == ["01_extract", "02_cleanse"]
    with pytest.raises(runner.PipelineError, match="unknown stage"):
        runner.select_stages(stages, ["train_all"])


def test_every_stage_notebook_declares_legal_entity():
    declared = runner.stage_parameters(runner.discover_stages())
    assert all("legal_entity" in names for names in declared.values()), declared


def test_a_misspelt_parameter_is_refused_before_anything_runs(tmp_path):
    config = runner.PipelineConfig(parameters={"legal_entity": "USRT"}, stages=["extract"])
    with pytest.raises(runner.PipelineError, match=r"\['legal_entitty'\] are not declared"):
        runner.run_pipeline(config, {"legal_entitty": "X"}, run_dir=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_an_invalid_legal_entity_is_refused():
    config = runner.PipelineConfig(parameters={"legal_entity": "../etc"}, stages=["extract"])
    with pytest.raises(ValueError, match="not a valid legal entity id"):
        runner.run_pipeline(config, progress=False)
