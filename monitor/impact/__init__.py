"""Is the drift harmful, and which images? Calibration, label-free accuracy, outlier scores.

Pure pieces (``temperature``, ``estimate``, ``outliers``, ``profile``) and the stage that applies
them to stored windows (``stage``); the label queue (``label_queue``) picks what to label next.
"""
