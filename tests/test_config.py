import pytest

from deconfetti import InputError
from deconfetti.config import Config, default_config_text, load_config, parse_overrides


def test_defaults_and_overrides(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text("[find]\nthreshold = 6\n[classify]\nexcess_min = 4.5\n")
    config = load_config(path, parse_overrides(["find.pb_min=0.3"]))
    assert config.find.threshold == 6.0 and isinstance(config.find.threshold, float)
    assert config.classify.excess_min == 4.5 and config.find.pb_min == 0.3
    assert config.noise == Config().noise


@pytest.mark.parametrize("text, message", [
    ("[fnd]\nthreshold = 6\n", "unknown parameter stage 'fnd'"),
    ("[find]\nthreshhold = 6\n", "unknown parameter 'find.threshhold'"),
    ("[find]\nthreshold = 'high'\n", "must be a number"),
    ("[find]\nthreshold = -1\n", "must not be negative"),
    ("[stream]\nblock_channels = 2.5\n", "must be an integer"),
    ("[find\n", "not a valid TOML"),
])
def test_bad_parameter_files(tmp_path, text, message):
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        load_config(path)


def test_bad_overrides():
    with pytest.raises(InputError, match="stage.key=value"):
        parse_overrides(["threshold"])
    with pytest.raises(InputError, match="cannot read"):
        load_config("/nonexistent/p.toml")


def test_default_text_documents_every_key():
    text = default_config_text()
    for stage, values in Config().to_dict().items():
        assert f"[{stage}]" in text
        for key in values:
            assert f"\n{key} = " in text
