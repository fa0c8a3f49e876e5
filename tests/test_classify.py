import numpy as np
import pytest

from deconfetti.classify import CLASSES, classify
from deconfetti.config import ClassifyConfig, FindConfig

CASES = [
    # spike, dirty, score, found_by -> class
    (9.0, 0.5, 8.5, "spike+model", "confetti"),   # image only: confetti
    (4.4, -2.0, 4.4, "model", "confetti"),        # faint in the image, none in the data
    (12.0, 11.8, 0.2, "spike+model", "real"),     # the data demand it
    (6.0, 5.9, 0.1, "spike", "real"),
    (1.0, 0.9, 0.3, "model", "benign"),           # model confetti, no false source
    (5.4, 3.9, 1.5, "spike", "uncertain"),        # too faint to tell
    (7.0, 4.0, 3.0, "spike", "uncertain"),
    (30.0, 29.8, 0.1, "model", "benign"),         # continuum point source (one plane)
    (7.0, np.nan, np.nan, "spike", "uncertain"),  # no psf
    (1.0, np.nan, np.nan, "model", "benign"),     # no psf, no image spike
]


@pytest.mark.parametrize("spike, dirty, score, how, expected", CASES)
def test_rules(spike, dirty, score, how, expected):
    labels, reasons = classify(np.array([spike]), np.array([dirty]), np.array([score]),
                               np.array([how]), find=FindConfig(), classify=ClassifyConfig())
    assert labels[0] == expected
    assert reasons[0]


def test_every_class_has_a_colour_and_meaning():
    assert set(CLASSES) == {"confetti", "benign", "real", "uncertain"}
    assert all(colour and meaning for colour, meaning in CLASSES.values())


def test_thresholds_are_parameters():
    strict = ClassifyConfig(excess_min=9.0)
    labels, _ = classify(np.array([9.0]), np.array([0.5]), np.array([8.5]),
                         np.array(["spike"]), find=FindConfig(), classify=strict)
    assert labels[0] != "confetti"
