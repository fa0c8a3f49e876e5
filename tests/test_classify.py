import numpy as np
import pytest

from deconfetti.classify import CLASSES, classify
from deconfetti.config import ClassifyConfig, FindConfig

CASES = [
    # spike, dirty, score, reliability, found_by -> class
    (9.0, 0.5, 8.5, 0.2, "spike+model", "confetti"),   # image only: confetti
    (4.4, -2.0, 4.4, np.nan, "model", "confetti"),     # faint in the image, none in the data
    (12.0, 11.8, 0.2, 1.0, "spike+model", "real"),     # the data demand it
    (6.0, 5.9, 0.1, 0.95, "spike", "real"),
    (6.0, 5.9, 0.1, 0.3, "spike", "uncertain"),        # as many negative spikes: noise-like
    (1.0, 0.9, 0.3, np.nan, "model", "benign"),        # model confetti, no false source
    (30.0, 29.8, 0.1, np.nan, "model", "benign"),      # continuum point source (one plane)
    (5.4, 3.9, 1.5, 1.0, "spike", "uncertain"),        # too faint to tell
    (7.0, 4.0, 3.0, 1.0, "spike", "uncertain"),
    (7.0, np.nan, np.nan, 1.0, "spike", "uncertain"),  # no psf
    (1.0, np.nan, np.nan, np.nan, "model", "benign"),  # no psf, no image spike
]


def one(spike, dirty, score, reliability, how, rules=ClassifyConfig()):
    labels, reasons = classify(np.array([spike]), np.array([dirty]), np.array([score]),
                               np.array([reliability]), np.array([how]), find=FindConfig(),
                               classify=rules)
    return labels[0], reasons[0]


@pytest.mark.parametrize("spike, dirty, score, reliability, how, expected", CASES)
def test_rules(spike, dirty, score, reliability, how, expected):
    label, reason = one(spike, dirty, score, reliability, how)
    assert label == expected
    assert reason


def test_every_class_has_a_colour_and_meaning():
    assert set(CLASSES) == {"confetti", "benign", "real", "uncertain"}
    assert all(colour and meaning for colour, meaning in CLASSES.values())


def test_thresholds_are_parameters():
    assert one(9.0, 0.5, 8.5, 1.0, "spike", ClassifyConfig(excess_min=9.0))[0] != "confetti"
    assert one(6.0, 5.9, 0.1, 0.5, "spike", ClassifyConfig(reliability_min=0.4))[0] == "real"
