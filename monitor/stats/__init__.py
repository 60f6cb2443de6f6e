"""Pure, vectorised statistics: no I/O, no state, no thresholds.

Detectors (``monitor.detectors``) turn these into decisions; :func:`adjust_pvalues` is the one
place where p-values of several features are combined.
"""

from monitor.stats.categorical import (
    align_counts,
    chi2_goodness_of_fit,
    chi2_homogeneity,
    cohens_h,
    cohens_w,
    cohens_w_adjusted,
    proportion_test,
    two_proportion_test,
)
from monitor.stats.histograms import (
    bin_counts,
    evidently_bins,
    fill_zeros,
    js_distance,
    psi,
    quantile_edges,
    shares,
)
from monitor.stats.mmd import (
    MMDTest,
    fit_pca,
    fourier_features,
    median_gamma,
    mmd2_unbiased,
    mmd_rff_gaussian,
    mmd_test,
    rbf_kernel,
)
from monitor.stats.multitest import Correction, adjust_pvalues
from monitor.stats.univariate import ColumnTests, ks_columns, ks_pvalue, wasserstein_norm

__all__ = [
    "ColumnTests",
    "Correction",
    "MMDTest",
    "adjust_pvalues",
    "align_counts",
    "bin_counts",
    "chi2_goodness_of_fit",
    "chi2_homogeneity",
    "cohens_h",
    "cohens_w",
    "cohens_w_adjusted",
    "evidently_bins",
    "fill_zeros",
    "fit_pca",
    "fourier_features",
    "js_distance",
    "ks_columns",
    "ks_pvalue",
    "median_gamma",
    "mmd2_unbiased",
    "mmd_rff_gaussian",
    "mmd_test",
    "proportion_test",
    "psi",
    "quantile_edges",
    "rbf_kernel",
    "shares",
    "two_proportion_test",
    "wasserstein_norm",
]
