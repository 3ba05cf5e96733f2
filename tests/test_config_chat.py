"""`python -m course run --config FILE` (a YAML file mapped onto the notebooks' parameters), `course parameters` and
`course chat` (issue 25)."""

import io

import pytest

from course import chat, cli, config, runner, syllabus
from helpers import evaluation, recipes


def _lessons(*numbers):
    lessons = syllabus.load().lessons
    return [lessons[n] for n in numbers]


def test_every_lesson_documents_its_parameters():
    for lesson in syllabus.load().lessons.values():
        if lesson.status == "ready":
            params = config.lesson_parameters(lesson)
            assert {"PROFILE", "SEED"} <= set(params) and all(params.values()), lesson.stem


def test_a_config_maps_onto_the_lessons_that_have_each_field(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("# a run\nseed: 3\nCOT_STEPS: 50\nREASONING_MODEL: null\nVOTES: [1, 3]\n")
    fields = config.load(path)
    assert fields["SEED"] == (3, f"{path}:2") and fields["VOTES"] == ([1, 3], f"{path}:5")
    per_lesson = config.check(fields, _lessons("03", "11"))
    assert per_lesson["11_reasoning"] == {"SEED": 3, "COT_STEPS": 50, "REASONING_MODEL": None, "VOTES": [1, 3]}
    assert per_lesson["03_sft"] == {"SEED": 3}  # lesson 03 has none of the others
    assert config.load(tmp_path / "run.yaml") == fields and config.load(_empty(tmp_path)) == {}


def _empty(tmp_path):
    (tmp_path / "empty.yaml").write_text("# nothing set\n")
    return tmp_path / "empty.yaml"


@pytest.mark.parametrize("text, message", [
    ("SEED: 1\nLERNING_RATE: 0.1\n", "run.yaml:2: unknown field 'LERNING_RATE': no lesson of this run has that"),
    ("- SEED\n", "run.yaml:1: a config is a mapping of parameter names"),
    ("SEED: 1\nseed: 2\n", "run.yaml:2: field 'seed' set twice (first at"),
    ("SEED: [1\n", "run.yaml: not valid YAML"),
    ("2nd: 1\n", "run.yaml:1: field '2nd' is not a parameter name"),
])
def test_config_errors_name_the_file_the_line_and_the_field(tmp_path, text, message):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(config.ConfigError) as err:
        config.check(config.load(path), _lessons("03"))
    assert message in str(err.value)
    if "unknown field" in message:  # and what the lessons of the run do take
        assert "03_sft: PROFILE, SEED" in str(err.value)
    with pytest.raises(config.ConfigError, match="no such file"):
        config.load(tmp_path / "missing.yaml")


def test_course_run_config_gives_each_lesson_its_fields_and_param_wins(tmp_path, monkeypatch, capsys):
    import papermill

    got = {}
    monkeypatch.setattr(papermill, "execute_notebook", lambda source, out, parameters, **kw: got.update(
        {out.split("/")[-1]: parameters}))
    monkeypatch.setattr(runner, "prepare_in_child", lambda profile, lessons, seed: got.update(prepared_seed=seed) or {})
    path = tmp_path / "run.yaml"
    path.write_text("SEED: 3\nCOT_STEPS: 50\n")
    assert cli.main(["run", "--path", "complete", "--only", "03", "11", "--config", str(path), "--param",
                     "COT_STEPS=60", "--out", str(tmp_path / "runs")]) == 0
    assert got["11_reasoning.ipynb"] == {"PROFILE": "tiny", "SEED": 3, "COT_STEPS": 60}
    assert got["03_sft.ipynb"] == {"PROFILE": "tiny", "SEED": 3} and got["prepared_seed"] == 3
    path.write_text("STEPS_TYPO: 1\n")
    with pytest.raises(SystemExit, match="unknown field 'STEPS_TYPO'"):
        cli.main(["run", "--path", "complete", "--only", "03", "--config", str(path), "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="--param: unknown field 'NOPE'"):
        cli.main(["run", "--path", "complete", "--only", "03", "--param", "NOPE=1", "--out", str(tmp_path)])
    assert cli.main(["parameters", "11"]) == 0
    assert "COT_STEPS" in capsys.readouterr().out


def test_chat_answers_as_the_model_generates_and_reset_forgets(tmp_path):
    model, tok = recipes.load_model("tiny:sft")
    question, other = "What is 2 + 3?", "What is the capital of Lulu?"
    single = evaluation.generate(model, tok, [[{"role": "user", "content": q}] for q in (question, other)], 64)
    out = io.StringIO()
    assert chat.main("tiny:sft", stdin=io.StringIO(f"{question}\n/reset\n{other}\n/oops\n\n/quit\nignored\n"),
                     stdout=out) == 0
    text = out.getvalue()
    assert f"model> {single[0]}\n(new conversation)\nmodel> {single[1]}\nunknown command '/oops'" in text
    assert "ignored" not in text
    # without /reset the second question is asked after the first exchange: another prompt
    talk = chat.Chat("tiny:sft")
    assert talk.say(question) == single[0] and len(talk.messages) == 2
    talk.say(other)
    assert len(talk.messages) == 4 and talk.messages[2] == {"role": "user", "content": other}
    one = io.StringIO()
    assert chat.main("tiny:sft", prompt=question, stdout=one) == 0 and one.getvalue() == f"{single[0]}\n"


def test_chat_finds_the_newest_checkpoint_of_a_run_folder(tmp_path):
    import os

    for i, name in enumerate(("sft", "dpo")):
        (tmp_path / "run" / name).mkdir(parents=True)
        (tmp_path / "run" / name / "config.json").write_text("{}")
        os.utime(tmp_path / "run" / name / "config.json", (1000 + i, 1000 + i))
    assert chat.find_model(str(tmp_path / "run")) == str(tmp_path / "run" / "dpo")
    assert chat.find_model(str(tmp_path / "run" / "sft")) == str(tmp_path / "run" / "sft")
    assert chat.find_model("tiny:sft") == "tiny:sft"
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no model in this folder"):
        chat.find_model(str(tmp_path / "empty"))


def test_the_shipped_capstone_config_maps_onto_lesson_19():
    """course/configs/post_training.yaml, the README's and lesson 19's example, names only lesson 19's fields."""
    per_lesson = config.check(config.load(config.CONFIGS_DIR / "post_training.yaml"), _lessons("19"))
    fields = per_lesson["19_capstone_post_training"]
    assert fields["GGUF_TYPES"] == ["q8_0", "Q4_K_M"] and fields["LOAD_IN_8BIT"] is True and len(fields) >= 8


def test_the_domain_capstone_config_maps_onto_lesson_20():
    """course/configs/domain_adaptation.yaml names only lesson 20's fields, and a field it does not have is an error
    naming the file."""
    per_lesson = config.check(config.load(config.CONFIGS_DIR / "domain_adaptation.yaml"), _lessons("20"))
    fields = per_lesson["20_capstone_domain_adaptation"]
    assert fields["REPLAY"] == 0.25 and fields["TOP_K"] == 3 and len(fields) >= 6
    with pytest.raises(config.ConfigError, match=r"post_training.yaml:\d+: unknown field 'PLANTED_PER_KIND'"):
        config.check(config.load(config.CONFIGS_DIR / "post_training.yaml"), _lessons("20"))
