"""The pipeline runner's configuration handling (the end-to-end runs are in test_pipeline_e2e.py)."""

import pytest

from workbench import runner


@pytest.fixture(scope="module")
def declared():
    return runner.stage_parameters(runner.discover_stages())


def typed(declared, *items):
    return runner.typed_parameters(runner.parse_overrides(list(items)), declared)


def test_overrides_take_the_type_their_notebook_declares(declared):
    assert typed(declared, "k=20", "legal_entity=USRT", "algorithms=[sar, ease]", "start=", "incremental=false") == {
        "k": 20,
        "legal_entity": "USRT",
        "algorithms": ["sar", "ease"],
        "start": "",
        "incremental": False,
    }
    # dates stay the text as written (YAML would make a date, which JSON cannot carry): the README's example
    assert typed(declared, "end=2025-07-01", "split_time=2011-11-09") == {"end": "2025-07-01", "split_time": "2011-11-09"}
    # ids are strings, never octal or numbers
    assert typed(declared, "legal_entity=0123")["legal_entity"] == "0123"
    assert typed(declared, "pipeline_run_id=1e3")["pipeline_run_id"] == "1e3"
    # booleans: true/false, yes/no, 1/0 in any case; a quoted 'false' is false, never bool("false")
    for text, value in [("false", False), ("'false'", False), ('"False"', False), ("NO", False), ("0", False),
                        ("true", True), ("Yes", True), ("1", True)]:
        assert typed(declared, f"enable_pos_recommendations={text}")["enable_pos_recommendations"] is value, text
    assert typed(declared, "enable_pos_recommendations=null")["enable_pos_recommendations"] is None
    assert typed(declared, "k=0123")["k"] == 123  # decimal, not octal 83
    assert typed(declared, "ease_lambda=250", "max_basket_size=")["ease_lambda"] == 250.0
    assert typed(declared, "max_basket_size=")["max_basket_size"] is None


@pytest.mark.parametrize(
    "item, expected",
    [
        ("enable_pos_recommendations=maybe", "'enable_pos_recommendations': 'maybe' is not a boolean"),
        ("incremental=on", "'incremental': 'on' is not a boolean"),
        ("k=ten", "'k': 'ten' is not an integer"),
        ("k=1.5", "'k': '1.5' is not an integer"),
        ("ease_lambda=inf", "'ease_lambda': 'inf' is not a number"),
        ("max_basket_size=big", "'max_basket_size': 'big' is not an integer or null"),
        ("algorithms=sar", "'algorithms': 'sar' is not a list"),
        ("hyperparameters=[1]", r"'hyperparameters': \[1\] is not a mapping"),
    ],
)
def test_a_value_of_the_wrong_type_names_the_parameter_value_and_type(declared, item, expected):
    with pytest.raises(runner.PipelineError, match=expected):
        typed(declared, item)


def test_config_file_values_are_typed_by_the_notebook_too(tmp_path, declared):
    config = tmp_path / "c.yml"
    config.write_text("stages: extract\nparameters:\n  legal_entity: 0123\n  end: 2025-07-01\n  k: 5\n"
                      "  enable_pos_recommendations: 'no'\n  algorithms: [sar, ease]\n  source: ''\n")
    loaded = runner.load_config(config)
    assert loaded.stages == ["extract"]  # one stage, not e, x, t, r, a, c, t
    assert runner.typed_parameters(loaded.parameters, declared) == {
        "legal_entity": "0123", "end": "2025-07-01", "k": 5, "enable_pos_recommendations": False,
        "algorithms": ["sar", "ease"], "source": "",
    }
    config.write_text("stages: extract, cleanse\n")
    assert runner.load_config(config).stages == ["extract", "cleanse"]
    config.write_text("stages: {extract: 1}\n")
    with pytest.raises(runner.PipelineError, match="'stages' must be a list"):
        runner.load_config(config)


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
