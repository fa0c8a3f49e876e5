"""Classes and the rules that assign them: one registry, channel verdicts, then one rule per
candidate.

Channel verdict (made in the scan): a channel is **diverged** when ``image - dirty`` (what
its model puts into the image beyond what the data demand) varies over the channel
``diverged_min`` times more than the dirty image (the data) itself: the image is mostly
structure of the model's own, a minor cycle that failed there (continued or not). Its
candidates are reported as ``diverged``, not as point sources. A channel is
**unconverged** when its residual rms is ``unconverged_min`` times the cube's median
channel rms or more: clean left it far above the noise (stalled at a blown-up residual,
or not run: an empty mask); its confetti and real verdicts are ``uncertain`` (nothing in it
can be judged at the noise), and so is a confetti verdict beside it, whose one-channel
contrast takes that channel's mean.

The candidate rules read ``spike_snr`` (the one-channel image spike; in a one-plane
product, the image against its ring), ``image_snr``, ``dirty_snr`` (the same spike in the dirty
image, i.e. in the data), ``unsupported_snr`` (the unsupported excess in channel rms), its
``false_alarm`` (measured against the same statistic at random pixels of the channel),
``reliability`` and ``found_by``:

- confetti: a positive image feature (``image_snr > 0``, the spike at least ``excess_min``
  rms, and at least ``feature_fraction`` of the largest spike within one beam FWHM,
  ``spike_peak_snr``: the candidate is on the feature, not on the flank of a brighter one) whose
  unsupported excess is compact (``excess_extent`` at most ``extent_max``) and
  unsupported excess reaches ``excess_min`` rms, is not explained by the channel's own
  variation of the statistic (``false_alarm <= false_alarm_max``), of which the data
  hold at most ``1 - excess_fraction``, and which a model component under it makes
  (``component_snr``, what the model within a beam restores there, reaches
  ``excess_min`` and ``excess_fraction`` of the excess);
- benign: otherwise, a model component with no image spike of its own, on the flank of
  a brighter one or with an extended excess (in a one-plane product every candidate is a
  model component);
- real: otherwise, the data alone show the spike at ``real_min`` or more and negative
  spikes as strong are rare (``reliability >= reliability_min``);
- noise: a faint or noise-like spike with no significant unsupported excess;
- uncertain: the rest (an excess no stronger than the channel's own variation, or no psf
  to test against).
"""

from __future__ import annotations

import numpy as np

from .config import ClassifyConfig

__all__ = ["CLASSES", "FLAGGED", "diverged", "unconverged", "mark_unconverged", "classify"]

#: classification -> (colour used in regions and figures, meaning)
CLASSES: dict[str, tuple[str, str]] = {
    "confetti": ("red", "a fake one-channel source: the image shows it, the data do not"),
    "benign": ("green", "model confetti that puts no false source in the image"),
    "real": ("cyan", "demanded by the data: a narrow line, maser or compact source"),
    "noise": ("gray", "a noise peak (in the data and the image alike, or too faint)"),
    "diverged": ("magenta", "in a channel whose whole model departs from the data "
                            "(a diverged clean)"),
    "uncertain": ("yellow", "an excess no stronger than the channel's own variation, "
                            "or no psf to test against the data"),
}
#: the classes that call for a look or a repair (the region files hold these by default)
FLAGGED = ("confetti", "diverged", "uncertain")
#: the verdicts that an unconverged channel leaves uncertain (the others claim nothing
#: that its noise could fake)
JUDGED = ("confetti", "real")


def diverged(unsupported: np.ndarray | float, rules: ClassifyConfig) -> np.ndarray | bool:
    """Whether channels are diverged, from their ``unsupported`` ratio (robust rms of
    image - dirty over that of the dirty image; NaN, not measured, is not diverged)."""
    with np.errstate(invalid="ignore"):
        return np.asarray(unsupported) >= rules.diverged_min


def unconverged(rms: np.ndarray, rules: ClassifyConfig) -> np.ndarray:
    """Whether each channel is unconverged: its residual ``rms`` (per channel, any unit)
    at least ``unconverged_min`` times the median over the cube's channels (NaN: not)."""
    with np.errstate(invalid="ignore"):
        return _over_median(rms) >= rules.unconverged_min


def mark_unconverged(classification: np.ndarray, reason: np.ndarray, channel: np.ndarray,
                     flags: np.ndarray, rms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Confetti and real verdicts in unconverged channels (``flags`` per channel, from
    `unconverged`), and confetti beside one, as ``uncertain``, with the channel's residual
    rms over the cube's median (from ``rms``) in the reason."""
    classification, reason = np.array(classification, dtype=object), np.array(reason, dtype=object)
    ratio = _over_median(rms)
    nchan = len(flags)
    for i, c in enumerate(np.asarray(channel, dtype=int)):
        beside = [n for n in (c - 1, c + 1) if 0 <= n < nchan and flags[n]]
        if not ((flags[c] and classification[i] in JUDGED)
                or (beside and classification[i] == "confetti")):
            continue
        why = (f"channel {c} is unconverged (its residual rms is {ratio[c]:.1f} times the "
               "cube's median): nothing in it can be judged at the noise" if flags[c] else
               f"adjacent channel {beside[0]} is unconverged (residual rms "
               f"{ratio[beside[0]]:.1f} times the cube's median): the one-channel contrast "
               "takes its mean")
        classification[i], reason[i] = "uncertain", f"{why}; by the test alone {classification[i]}"
    return classification.astype(str), reason.astype(str)


def _over_median(rms: np.ndarray) -> np.ndarray:
    """Each channel's rms over the median of the cube's channels (NaN where unmeasured)."""
    rms = np.asarray(rms, dtype=float)
    return rms / (np.nanmedian(rms) if np.isfinite(rms).any() else np.nan)


def classify(spike_snr: np.ndarray, spike_rms: np.ndarray, image_snr: np.ndarray,
             dirty_snr: np.ndarray, unsupported_snr: np.ndarray, false_alarm: np.ndarray,
             reliability: np.ndarray, found_by: np.ndarray, diverged: np.ndarray,
             component_snr: np.ndarray, spike_peak_snr: np.ndarray,
             excess_extent: np.ndarray, *, rules: ClassifyConfig
             ) -> tuple[np.ndarray, np.ndarray]:
    """Class and reason of each candidate.

    Parameters
    ----------
    spike_snr, dirty_snr : ndarray, shape (n,)
        In units of the spike noise; ``dirty_snr`` is NaN when there is no psf.
    spike_rms : ndarray, shape (n,)
        The spike noise in channel rms.
    image_snr : ndarray, shape (n,)
        The image at the candidate, in rms.
    unsupported_snr : ndarray, shape (n,)
        In channel rms; NaN when there is no psf.
    false_alarm : ndarray, shape (n,)
        Expected false alarms as strong in the cube; NaN when there is no psf.
    reliability : ndarray, shape (n,)
        Of the image spike (NaN for model components).
    found_by : ndarray of str, shape (n,)
        'spike', 'spike+model' or 'model'.
    diverged : ndarray of bool, shape (n,)
        Whether the candidate's channel is diverged.
    component_snr : ndarray, shape (n,)
        What the model within a beam of the candidate restores there, in rms.
    spike_peak_snr : ndarray, shape (n,)
        The largest spike within one beam FWHM of the candidate, in spike noise (NaN
        when there is no psf).
    excess_extent : ndarray, shape (n,)
        Fraction of directions in which the excess one beam FWHM out is at least half of
        the candidate's (NaN when there is no psf).

    Returns
    -------
    classification, reason : ndarray of str, shape (n,)
    """
    labels, reasons = [], []
    for values in zip(spike_snr, spike_rms, image_snr, dirty_snr, unsupported_snr, false_alarm,
                      reliability, found_by, diverged, component_snr, spike_peak_snr,
                      excess_extent):
        label, reason = _one(*(float(v) for v in values[:7]), str(values[7]),
                             bool(values[8]), *(float(v) for v in values[9:]), rules)
        labels.append(label)
        reasons.append(reason)
    return np.array(labels, dtype=str), np.array(reasons, dtype=str)


def _one(spike: float, spike_unit: float, image: float, dirty: float, excess: float,
         alarms: float, trust: float, how: str, diverged: bool, component: float,
         peak: float, extent: float, rules: ClassifyConfig) -> tuple[str, str]:
    from_model = how == "model"  # a model component with no image spike of its own
    if diverged:
        return "diverged", (f"the channel's model departs from the data everywhere (a "
                            f"diverged clean); here unsupported {excess:.1f} rms")
    if not np.isfinite(excess):
        if from_model:
            return "benign", (f"bright model component; image {spike:.1f} sigma there; "
                              "no psf to test it against the data")
        return "uncertain", f"{spike:.1f} sigma image spike; no psf to test it against the data"
    held = dirty / spike if spike > 0 else np.inf
    feature = image > 0 and spike * spike_unit >= rules.excess_min
    significant = alarms <= rules.false_alarm_max
    fake_like = excess >= rules.excess_min and feature and held <= 1 - rules.excess_fraction
    if fake_like and spike < rules.feature_fraction * peak:
        return ("benign" if from_model else "uncertain"), (
            f"on the flank of a brighter image feature (spike {spike:.1f} here, {peak:.1f} "
            f"within a beam): no compact source of its own; unsupported {excess:.1f} rms")
    if fake_like and extent > rules.extent_max:
        return ("benign" if from_model else "uncertain"), (
            f"unsupported {excess:.1f} rms, but extended: one beam out it stays above half "
            f"in {extent:.0%} of the directions (resolved-out flux of extended emission, "
            "not a compact source)")
    made_here = component >= max(rules.excess_min, rules.excess_fraction * excess)
    if fake_like and significant and not made_here:
        return "uncertain", (f"unsupported {excess:.1f} rms, but no model component here "
                             f"makes it (what the model within a beam restores: "
                             f"{component:.1f} rms): it comes from components elsewhere, "
                             "e.g. a restoration that wraps around the image edge")
    if fake_like and significant:
        return "confetti", (f"{excess:.1f} rms of the image is not in the data "
                            f"(image spike {spike:.1f}, in the data {dirty:.1f}; "
                            f"false alarms {alarms:.2g})")
    if fake_like:
        return "uncertain", (f"unsupported {excess:.1f} rms, but the channel's image - dirty "
                             f"varies as much elsewhere (false alarms {alarms:.2g})")
    if from_model:
        if not feature:
            return "benign", (f"bright model component, no false source: no image spike "
                              f"(image {image:.1f} rms, spike {spike:.1f})")
        return "benign", (f"bright model component; the data hold {held:.0%} of the image "
                          f"spike (image {spike:.1f}, dirty {dirty:.1f}, unsupported "
                          f"{excess:.1f} rms)")
    supported = dirty >= rules.real_min and held >= 1 - rules.excess_fraction
    if supported and trust >= rules.reliability_min:
        return "real", (f"the data show it: dirty {dirty:.1f} sigma for an image spike of "
                        f"{spike:.1f} sigma (unsupported {excess:.1f}, reliability {trust:.2f})")
    if supported:
        return "noise", (f"in the data (dirty {dirty:.1f} sigma) but noise-like: "
                         f"reliability {trust:.2f} against negative spikes as strong")
    return "noise", (f"a noise peak: image spike {spike:.1f}, dirty {dirty:.1f}, "
                     f"unsupported {excess:.1f} rms, reliability {trust:.2f}")
