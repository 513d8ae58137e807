"""Single-frame depth: the estimator the stages call."""
