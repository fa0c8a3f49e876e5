"""Classes and the rules that assign them: one registry, one function.

The rules read, per candidate: ``spike_snr`` (significance of the one-channel image
spike; in a one-plane product, of the image itself), ``dirty_snr`` (the same spike in the
dirty image, i.e. in the data), ``score`` (the unsupported excess, in channel rms: what
the model puts into the image beyond what the data demand; NaN without a psf),
``reliability`` and ``found_by``.

- confetti: the unsupported excess reaches ``excess_min`` and the data hold at most
  ``1 - excess_fraction`` of the image spike;
- benign: otherwise, a model component with no image spike of its own (in a one-plane
  product every candidate is a model component: a continuum point source's single
  model pixel is harmless model confetti);
- real: otherwise, the data alone show the spike at ``real_min`` or more and negative
  spikes as strong are rare (``reliability >= reliability_min``);
- uncertain: the rest (faint, noise-like, or no psf to test against).
"""

from __future__ import annotations

import numpy as np

from .config import ClassifyConfig, FindConfig

__all__ = ["CLASSES", "classify"]

#: classification -> (colour used in regions and figures, meaning)
CLASSES: dict[str, tuple[str, str]] = {
    "confetti": ("red", "a fake one-channel source: the image shows it, the data do not"),
    "benign": ("green", "model confetti that puts no false source in the image"),
    "real": ("cyan", "demanded by the data: a narrow line, maser or compact source"),
    "uncertain": ("yellow", "too faint to tell, or no psf to test against the data"),
}


def classify(spike_snr: np.ndarray, dirty_snr: np.ndarray, score: np.ndarray,
             reliability: np.ndarray, found_by: np.ndarray, *, find: FindConfig,
             classify: ClassifyConfig) -> tuple[np.ndarray, np.ndarray]:
    """Class and reason of each candidate.

    Parameters
    ----------
    spike_snr, dirty_snr : ndarray, shape (n,)
        In units of the spike noise; ``dirty_snr`` is NaN when there is no psf.
    score : ndarray, shape (n,)
        In channel rms; NaN when there is no psf.
    reliability : ndarray, shape (n,)
        Of the image spike (NaN for model components).
    found_by : ndarray of str, shape (n,)
        'spike', 'spike+model' or 'model'.

    Returns
    -------
    classification, reason : ndarray of str, shape (n,)
    """
    labels, reasons = [], []
    for spike, dirty, excess, trust, how in zip(spike_snr, dirty_snr, score, reliability,
                                                found_by):
        label, reason = _one(float(spike), float(dirty), float(excess), float(trust), str(how),
                             find, classify)
        labels.append(label)
        reasons.append(reason)
    return np.array(labels, dtype=str), np.array(reasons, dtype=str)


def _one(spike: float, dirty: float, excess: float, trust: float, how: str,
         find: FindConfig, rules: ClassifyConfig) -> tuple[str, str]:
    from_model = how == "model"  # a model component with no image spike of its own
    if not np.isfinite(excess):
        if from_model:
            return "benign", (f"bright model component; image {spike:.1f} sigma there; "
                              "no psf to test it against the data")
        return "uncertain", f"{spike:.1f} sigma image spike; no psf to test it against the data"
    if excess >= rules.excess_min and dirty <= (1 - rules.excess_fraction) * spike:
        return "confetti", (f"{excess:.1f} rms of the image is not in the data "
                            f"(image spike S/N {spike:.1f}, in the data {dirty:.1f})")
    if from_model:
        return "benign", (f"bright model component, no false source: the data hold what "
                          f"the image shows (image {spike:.1f}, dirty {dirty:.1f}, "
                          f"unsupported {excess:.1f} sigma)")
    supported = dirty >= rules.real_min and dirty >= (1 - rules.excess_fraction) * spike
    if supported and trust >= rules.reliability_min:
        return "real", (f"the data show it: dirty {dirty:.1f} sigma for an image spike of "
                        f"{spike:.1f} sigma (unsupported {excess:.1f}, reliability {trust:.2f})")
    if supported:
        return "uncertain", (f"in the data (dirty {dirty:.1f} sigma) but noise-like: "
                             f"reliability {trust:.2f} against negative spikes as strong")
    return "uncertain", (f"too faint to tell: image spike {spike:.1f}, dirty {dirty:.1f}, "
                         f"unsupported {excess:.1f} sigma")
