"""The digit classifier: network (model.py), weights file (checkpoint.py), batched inference (predictor.py)."""
