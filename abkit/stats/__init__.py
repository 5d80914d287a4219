"""Statistics on sufficient statistics: planning, readouts, checks. Knows nothing of SQL.

Names load lazily (PEP 562, :mod:`abkit._lazy`): ``import abkit.stats`` costs nothing until
a name is used, and nothing here ever imports SQLAlchemy.
"""

from __future__ import annotations

from abkit._lazy import lazy_attributes

# public name -> module that defines it
_LAZY: dict[str, str] = {
    # sufficient statistics and the shared result display (Contract 4)
    "MeanStats": "abkit.stats.sufficient",
    "RatioStats": "abkit.stats.sufficient",
    "Interval": "abkit.results",
    "ResultTable": "abkit.results",
    # estimators
    "Difference": "abkit.stats.estimators",
    "ArmEstimate": "abkit.stats.estimators",
    "estimate_difference": "abkit.stats.estimators",
    "arm_estimate": "abkit.stats.estimators",
    "arm_mean": "abkit.stats.estimators",
    "arm_var_of_mean": "abkit.stats.estimators",
    "cuped_theta": "abkit.stats.estimators",
    # readouts: the result, the two-arm and all-arm comparisons, the engines
    "LiftResult": "abkit.stats.lift",
    "compare": "abkit.stats.readout",
    "compare_variants": "abkit.stats.readout",
    "results_table": "abkit.stats.readout",
    "compare_difference": "abkit.stats.fixed",
    "compare_many": "abkit.stats.vectorised",
    "LiftArrays": "abkit.stats.vectorised",
    "fieller_ratio_set": "abkit.stats.fieller",
    "relative_lift": "abkit.stats.fieller",
    "p_value": "abkit.stats.tails",
    "critical_value": "abkit.stats.tails",
    "ReadoutEngine": "abkit.stats.engines",
    "register_engine": "abkit.stats.engines",
    "get_engine": "abkit.stats.engines",
    # CUPED helpers
    "CupedSummary": "abkit.stats.cuped",
    "cuped_summary": "abkit.stats.cuped",
    # checks and corrections
    "SRMResult": "abkit.stats.srm",
    "srm_test": "abkit.stats.srm",
    "adjust_pvalues": "abkit.stats.multiple",
    "apply_correction": "abkit.stats.multiple",
    "correct_family": "abkit.stats.family",
    "Cap": "abkit.stats.outliers",
    "AppliedCap": "abkit.stats.outliers",
    "cap_values": "abkit.stats.outliers",
    "resolve_cap": "abkit.stats.outliers",
    # planning
    "PowerPlan": "abkit.stats.planning",
    "plan_proportion": "abkit.stats.planning",
    "plan_mean": "abkit.stats.planning",
    "plan_ratio": "abkit.stats.planning",
    "plan_from_stats": "abkit.stats.planning",
    "corrected_alpha": "abkit.stats.planning",
    "expected_duration": "abkit.stats.planning",
    # guardrails (non-inferiority)
    "GuardrailResult": "abkit.stats.guardrails",
    "guardrail": "abkit.stats.guardrails",
    "noninferiority": "abkit.stats.guardrails",
    # sequential (mSPRT)
    "SequentialResult": "abkit.stats.sequential",
    "SequentialSeries": "abkit.stats.sequential",
    "SequentialLook": "abkit.stats.sequential",
    "SequentialPlan": "abkit.stats.sequential",
    "sequential_readout": "abkit.stats.sequential",
    "sequential_series": "abkit.stats.sequential",
    "plan_sequential": "abkit.stats.sequential",
    "tau_for_mde": "abkit.stats.sequential",
    # Bayesian
    "BayesianResult": "abkit.stats.bayesian",
    "bayesian_readout": "abkit.stats.bayesian",
    "beta_binomial_readout": "abkit.stats.bayesian",
    # asymptotic confidence sequences
    "ConfSeqResult": "abkit.stats.confseq",
    "ConfSeqSeries": "abkit.stats.confseq",
    "confseq_readout": "abkit.stats.confseq",
    "confseq_series": "abkit.stats.confseq",
    "confseq_rho": "abkit.stats.confseq",
    # small samples: exact and score methods for proportions
    "ExactResult": "abkit.stats.exact",
    "compare_exact": "abkit.stats.exact",
    "needs_exact": "abkit.stats.exact",
    "fisher_pvalue": "abkit.stats.exact",
    "newcombe_interval": "abkit.stats.exact",
    "wilson_interval": "abkit.stats.exact",
    # quantile metrics
    "QuantileStats": "abkit.stats.quantile",
    "QuantileResult": "abkit.stats.quantile",
    "compare_quantiles": "abkit.stats.quantile",
    "quantile_stats_from_events": "abkit.stats.quantile",
    "bracket_ranks": "abkit.stats.quantile",
    "with_bracket": "abkit.stats.quantile",
    "quantile_rank": "abkit.stats.quantile",
    # regression adjustment with several covariates (CUPED, CUPAC)
    "RegressionStats": "abkit.stats.regression",
    "RegressionAdjustment": "abkit.stats.regression",
    "regression_adjustment": "abkit.stats.regression",
    # intervals that agree with a multiplicity correction
    "CorrectedInterval": "abkit.stats.simultaneous",
    "corrected_intervals": "abkit.stats.simultaneous",
    # CUPED-aware planning
    "CupedPlan": "abkit.stats.planning",
    "plan_cuped": "abkit.stats.planning",
    "plan_from_stats_cuped": "abkit.stats.planning",
    "pre_period_r_squared": "abkit.stats.planning",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
