"""``make demo``: the whole loop on embedded defaults. Nothing outside this package imports it."""
