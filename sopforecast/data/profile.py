"""Demand profile of each series: intermittency (ADI), variability (CV²) and demand class.

The classes follow Syntetos & Boylan (2005): smooth, erratic, intermittent and lumpy, split
at ADI 1.32 and CV² 0.49. They decide which models suit a series (Croston-type methods for
intermittent and lumpy demand) and let accuracy be reported per segment.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["ADI_CUTOFF", "CV2_CUTOFF", "DEMAND_CLASSES", "classify_demand", "class_counts"]

ADI_CUTOFF = 1.32
CV2_CUTOFF = 0.49
DEMAND_CLASSES = ("smooth", "erratic", "intermittent", "lumpy", "zero")


def classify_demand(
    df: pd.DataFrame,
    *,
    id_col: str = "unique_id",
    time_col: str = "ds",
    target_col: str = "y",
    adi_cutoff: float = ADI_CUTOFF,
    cv2_cutoff: float = CV2_CUTOFF,
) -> pd.DataFrame:
    """Classify every series by its demand pattern.

    ADI (average demand interval) is the number of periods from the first sale to the end
    of the series divided by the number of periods with demand; CV² is the squared
    coefficient of variation of the non-zero demand sizes. Leading zeros before the first
    sale are ignored, so a new item is not called intermittent for not yet existing.

    Parameters
    ----------
    df : pandas.DataFrame
        Long-format demand history.
    id_col, time_col, target_col : str, default "unique_id", "ds", "y"
        Column names.
    adi_cutoff, cv2_cutoff : float, default 1.32 and 0.49
        Class boundaries.

    Returns
    -------
    pandas.DataFrame
        One row per series: ``unique_id, periods, nonzero, adi, cv2, demand_class``;
        series without any demand get class ``zero`` and NaN ADI/CV².
    """
    frame = df[[id_col, time_col, target_col]].sort_values([id_col, time_col], kind="stable")
    y = frame[target_col].to_numpy(dtype=float)
    positive = y > 0
    codes, uniques = pd.factorize(frame[id_col], sort=True)
    # periods from the first sale onwards: cumulative count of sales > 0 marks them
    started = pd.Series(positive).groupby(codes).cumsum().to_numpy() > 0
    periods = np.bincount(codes, weights=started, minlength=len(uniques))
    nonzero = np.bincount(codes, weights=positive, minlength=len(uniques))
    sizes = np.where(positive, y, 0.0)
    s1 = np.bincount(codes, weights=sizes, minlength=len(uniques))
    s2 = np.bincount(codes, weights=sizes**2, minlength=len(uniques))
    with np.errstate(divide="ignore", invalid="ignore"):
        adi = periods / nonzero
        mean = s1 / nonzero
        var = np.where(nonzero > 1, (s2 - nonzero * mean**2) / (nonzero - 1), 0.0)
        cv2 = np.clip(var, 0, None) / mean**2
    high_adi, high_cv2 = adi >= adi_cutoff, cv2 >= cv2_cutoff
    cls = np.select(
        [nonzero == 0, ~high_adi & ~high_cv2, ~high_adi & high_cv2, high_adi & ~high_cv2],
        ["zero", "smooth", "erratic", "intermittent"],
        default="lumpy",
    )
    out = pd.DataFrame(
        {
            id_col: uniques,
            "periods": periods.astype(int),
            "nonzero": nonzero.astype(int),
            "adi": np.where(nonzero > 0, adi, np.nan),
            "cv2": np.where(nonzero > 0, cv2, np.nan),
            "demand_class": pd.Categorical(cls, categories=DEMAND_CLASSES),
        }
    )
    return out


def class_counts(classes: pd.DataFrame) -> pd.DataFrame:
    """Series and share per demand class, in the fixed class order (empty classes kept)."""
    counts = classes["demand_class"].value_counts().reindex(DEMAND_CLASSES, fill_value=0)
    out = counts.rename_axis("demand_class").reset_index(name="series")
    out["share"] = out["series"] / max(int(out["series"].sum()), 1)
    return out
