import pytest
import torch

from seqgan.config import preset


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture
def tiny_cfg():
    return preset("tiny")


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
