"""The built-in classify task: a network by import path on an image folder (no code to write)."""
from .task import ClassifyTask

__all__ = ["ClassifyTask"]
