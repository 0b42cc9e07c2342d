"""fedtrain: federated learning with FedAvg on Paillier ciphertexts (fastpaillier)."""

from .errors import CheckpointError, ConfigError, DataError, FedTrainError, ProtocolError

__all__ = ["CheckpointError", "ConfigError", "DataError", "FedTrainError", "ProtocolError"]
__version__ = "0.1.0"
