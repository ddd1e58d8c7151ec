"""poolnas: where should a CNN downsample? Reproducing the Balanced Mixture of SuperNets (AutoML 2023)."""

__version__ = "0.1.0"
