"""The options of a run and their checks; imports no torch, so that a bad option is reported at once.

`fedtrain` validates a `RunConfig` (and the data folder it names) before it loads torch,
torchvision, Opacus or scikit-learn, which take seconds to import.  The modules that train
re-export what they need from here (`fedtrain.runner.RunConfig`, `fedtrain.training.LocalTrainingConfig`,
`fedtrain.differential_privacy.DPConfig`, `fedtrain.split_learning.resolve_cut`, ...).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastpaillier as fp

from .errors import CheckpointError, ConfigError
from .fedavg import AVERAGING_MODES
from .partition import SCHEMES, check_alpha, check_num_clients
from .paths import check_data_folder
from .phantoms import DEMO_CLASSES
from .protocol import DEFAULT_MIN_CLIENTS, MAX_ATTEMPTS
from .secure_aggregation import ROUNDING_MODES
from .server import PRIVACY_MODES, check_min_clients

__all__ = [
    "BN_STATS_MODES", "CUTS", "DEFAULT_CUTS", "DEVICES", "DPConfig", "LocalTrainingConfig", "MODEL_NAMES",
    "OPTIMIZERS", "RUN_MODES", "RunConfig", "resolve_cut", "resumed_config",
]

MODEL_NAMES = ("smallcnn", "resnet50", "densenet121")
RUN_MODES = (*PRIVACY_MODES, "split")
OPTIMIZERS = ("sgd", "adam")
BN_STATS_MODES = ("recompute", "running")
DEVICES = ("auto", "cpu", "cuda")
MIN_IMAGE_SIZE = 8

# Split learning: the layers after which the client part may end, per model, and the default cut.
CUTS: dict[str, tuple[str, ...]] = {
    "smallcnn": ("block1", "block2", "block3", "block4"),
    "resnet50": ("stem", "layer1", "layer2", "layer3", "layer4"),
    "densenet121": ("stem", "denseblock1", "transition1", "denseblock2", "transition2", "denseblock3",
                    "transition3", "denseblock4"),
}
DEFAULT_CUTS: dict[str, str] = {"smallcnn": "block2", "resnet50": "layer1", "densenet121": "transition1"}


def resolve_cut(model_name: str, cut: str | None) -> str:
    """The cut to use: `cut`, or the model's default when None; ConfigError names the valid cuts."""
    if model_name not in CUTS:
        raise ConfigError(f"unknown model {model_name!r}; choose one of {', '.join(MODEL_NAMES)}")
    if cut is None:
        return DEFAULT_CUTS[model_name]
    if cut not in CUTS[model_name]:
        raise ConfigError(f"unknown --cut {cut!r} for {model_name}; choose one of {', '.join(CUTS[model_name])} "
                          f"(default {DEFAULT_CUTS[model_name]})")
    return cut


@dataclass(frozen=True)
class LocalTrainingConfig:
    """Hyper-parameters of a client's local training (Algorithm 4)."""

    epochs: int = 1
    batch_size: int = 16
    lr: float = 0.05
    optimizer: str = "sgd"
    momentum: float = 0.0
    weight_decay: float = 0.0
    amp: bool = False
    bn_stats: str = "recompute"  # BatchNorm running statistics sent to FedAvg: see recompute_batchnorm_stats

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; choose sgd or adam")
        if self.bn_stats not in BN_STATS_MODES:
            raise ConfigError(f"unknown --bn-stats {self.bn_stats!r}; choose recompute or running")
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"--momentum must be in [0, 1), got {self.momentum}")
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ConfigError("--local-epochs, --batch-size and --lr must be positive")


@dataclass(frozen=True)
class DPConfig:
    """Privacy budget and clipping of DP-SGD."""

    target_epsilon: float = 8.0
    delta: float = 1e-5
    max_grad_norm: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.target_epsilon) and self.target_epsilon > 0):
            raise ConfigError(f"--target-epsilon must be a positive number, got {self.target_epsilon}")
        if not 0 < self.delta < 1:
            raise ConfigError(f"--delta must be in (0, 1), got {self.delta}")
        if not (math.isfinite(self.max_grad_norm) and self.max_grad_norm > 0):
            raise ConfigError(f"--max-grad-norm must be a positive number, got {self.max_grad_norm}")


@dataclass
class RunConfig:
    """Every option of `fedtrain run`; saved as config.json in the run directory."""

    data: str | None = None
    model: str = "smallcnn"
    weights: str | None = None
    clients: int = 4
    rounds: int = 5
    local_epochs: int = 1
    fraction: float = 1.0
    min_clients: int = DEFAULT_MIN_CLIENTS
    deadline: float | None = None  # seconds a client may take per exchange; a later reply is dropped
    round_attempts: int = 3  # paillier: tries of a round (a new selection each) before the run stops
    privacy: str = "paillier"
    key_bits: int = 2048
    insecure_keys: bool = False
    value_bits: int = 16
    rounding: str = "nearest"
    randomness: str = "djn"
    avg: str = "weighted"
    partition: str = "iid"
    alpha: float = 0.5
    device: str = "auto"
    amp: bool = False
    seed: int = 0
    batch_size: int = 16
    lr: float = 0.05
    optimizer: str = "sgd"
    momentum: float = 0.0
    bn_stats: str = "recompute"
    image_size: int = 128
    test_fraction: float = 0.2
    demo_train_per_class: int = 320
    demo_test_per_class: int = 80
    precompute: bool = False
    target_epsilon: float = 8.0
    delta: float = 1e-5
    max_grad_norm: float = 1.0
    cut: str | None = None
    keys: str | None = None  # folder of the clients' private key (default: runner.default_keys_dir(run_id))
    shadow_plain: bool = False
    run_id: str = field(default_factory=lambda: secrets.token_hex(8))

    def validate(self) -> None:
        """Raises ConfigError naming the first bad option, then DataError if the data folder cannot be used.

        Reads no image: the folder's layout, class folders and image file names only.
        """
        if self.model not in MODEL_NAMES:
            raise ConfigError(f"unknown model {self.model!r}; choose one of {', '.join(MODEL_NAMES)}")
        if self.privacy not in RUN_MODES:
            raise ConfigError(f"unknown --privacy {self.privacy!r}; choose one of {', '.join(RUN_MODES)}")
        if self.privacy == "split":
            resolve_cut(self.model, self.cut)
        if self.avg not in AVERAGING_MODES:
            raise ConfigError(f"unknown --avg {self.avg!r}; choose weighted or mean")
        if not 0.0 < self.fraction <= 1.0:
            raise ConfigError(f"--fraction must be in (0, 1], got {self.fraction}")
        if self.clients < 1:
            raise ConfigError(f"--clients must be at least 1, got {self.clients}")
        if self.privacy == "paillier":
            check_min_clients(self.min_clients, self.clients, self.fraction)
        if self.deadline is not None and not self.deadline > 0:
            raise ConfigError(f"--deadline must be a positive number of seconds, got {self.deadline}")
        if isinstance(self.round_attempts, bool) or not isinstance(self.round_attempts, int) \
                or not 1 <= self.round_attempts <= MAX_ATTEMPTS:
            raise ConfigError(f"--round-attempts must be an integer from 1 to {MAX_ATTEMPTS}, "
                              f"got {self.round_attempts!r}")
        if self.rounds < 1 or self.local_epochs < 1:
            raise ConfigError("--rounds and --local-epochs must be at least 1")
        if self.randomness not in ("djn", "classic"):
            raise ConfigError(f"unknown --randomness {self.randomness!r}; choose djn or classic")
        if self.rounding not in ROUNDING_MODES:
            raise ConfigError(f"unknown --rounding {self.rounding!r}; choose stochastic or nearest")
        if self.shadow_plain and self.privacy != "paillier":
            raise ConfigError("--shadow-plain compares an encrypted run with plain FedAvg; use it with --privacy paillier")
        if not 4 <= self.value_bits <= 40:
            raise ConfigError(f"--value-bits must be between 4 and 40, got {self.value_bits}")
        if self.key_bits < fp.MIN_SECURE_BITS and not self.insecure_keys:
            raise ConfigError(f"--key-bits {self.key_bits} is below {fp.MIN_SECURE_BITS}; use 2048 or more "
                              "(--insecure-keys allows small keys for tests only)")
        if self.weights is not None and not os.path.isfile(self.weights):
            raise ConfigError(f"--weights file {self.weights!r} does not exist")
        self.training()  # LocalTrainingConfig checks its own fields
        if self.privacy == "dp":
            self.dp_config()
        self._check_data_options()
        if self.data is not None:
            check_data_folder(self.data)

    def _check_data_options(self) -> None:
        """The options that say how the images are split, sized and placed, before any is loaded."""
        if self.partition not in SCHEMES:
            raise ConfigError(f"unknown partition scheme {self.partition!r}; use one of: {', '.join(SCHEMES)}")
        if self.partition == "dirichlet":
            check_alpha(self.alpha)
        if self.device not in DEVICES:
            raise ConfigError(f"unknown device {self.device!r}; choose auto, cpu or cuda")
        if isinstance(self.image_size, bool) or not isinstance(self.image_size, int) \
                or self.image_size < MIN_IMAGE_SIZE:
            raise ConfigError(f"--image-size must be an integer of at least {MIN_IMAGE_SIZE}, got {self.image_size!r}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"test fraction must be between 0 and 1, exclusive (got {self.test_fraction!r})")
        if self.data is None:
            for option, count in (("--demo-train-per-class", self.demo_train_per_class),
                                  ("--demo-test-per-class", self.demo_test_per_class)):
                if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                    raise ConfigError(f"{option} must be a positive integer, got {count!r}")
            check_num_clients(self.clients, self.demo_train_per_class * len(DEMO_CLASSES))

    def dp_config(self) -> DPConfig | None:
        """The DP-SGD settings in "dp" mode, else None."""
        if self.privacy != "dp":
            return None
        return DPConfig(target_epsilon=self.target_epsilon, delta=self.delta, max_grad_norm=self.max_grad_norm)

    def training(self) -> LocalTrainingConfig:
        """The clients' local training settings."""
        return LocalTrainingConfig(epochs=self.local_epochs, batch_size=self.batch_size, lr=self.lr,
                                   optimizer=self.optimizer, momentum=self.momentum, amp=self.amp,
                                   bn_stats=self.bn_stats)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "RunConfig":
        """A config from a saved config.json (keys it does not know are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


def resumed_config(run_dir: str | os.PathLike, rounds: int) -> RunConfig:
    """The saved config of the run in `run_dir` (what --resume continues), with at least `rounds` rounds."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{run_dir} holds no config.json; it is not a fedtrain run directory to resume")
    try:
        config = RunConfig.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{path} is not a readable run configuration ({exc}); the run directory is "
                              "damaged") from None
    config.rounds = max(config.rounds, rounds)
    return config
