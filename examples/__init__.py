"""Model servers that log to Driftwatch with the SDK: FastAPI, a TorchServe handler and a
Triton Python-backend ``model.py``. ``tests/test_examples.py`` runs each against the broker."""
