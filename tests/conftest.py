import pytest
import torch

from seqgan.cli import main
from seqgan.config import preset

# `seqgan train` flags for a run of a few seconds: the tiny preset, 2 MLE epochs, 1 adversarial step.
TINY_FAST = ["--preset", "tiny", "--no-progress", "--set", "schedule.mle_epochs=2", "schedule.adv_steps=1"]


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture
def tiny_cfg():
    return preset("tiny")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A finished TINY_FAST run directory, one per test module (tests copy it before editing it)."""
    out = tmp_path_factory.mktemp("run") / "r"
    assert main(["train", *TINY_FAST, "--out", str(out)]) == 0
    return out


@pytest.fixture
def block_import(monkeypatch):
    """block_import("pkg"): from then on `import pkg` raises ImportError, as if not installed."""
    import builtins

    real_import = builtins.__import__

    def block(blocked: str) -> None:
        def guarded(name, *args, **kwargs):
            if name == blocked:
                raise ImportError(name)
            return real_import(name, *args, **kwargs)

        monkeypatch.setattr(builtins, "__import__", guarded)

    return block
