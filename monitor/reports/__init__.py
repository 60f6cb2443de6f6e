"""Human-readable reports: the status page and the Evidently report."""
