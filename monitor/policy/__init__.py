"""The policy: pure rules (``rules``), applied to stored state (``apply``, ``supersede``)."""
