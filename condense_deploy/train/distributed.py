"""One process or several: torch.distributed with gloo on CPU and nccl on GPU, set up from torchrun.

``torchrun --nproc_per_node=N -m condense_deploy.train ...`` sets RANK / WORLD_SIZE / LOCAL_RANK /
MASTER_ADDR / MASTER_PORT; without them the trainer runs as a single process and nothing here
touches torch.distributed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ..errors import CondenseDeployError

__all__ = ["Dist", "setup"]


@dataclass
class Dist:
    """This process's place in the job."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialised: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over ranks (float64, so counts stay exact)."""
        if self.world == 1:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(tensor)
        return tensor.cpu().tolist()

    def broadcast_buffers(self, model: nn.Module) -> None:
        """Give every rank rank 0's buffers (BN statistics, masks) so all ranks hold one model."""
        if self.world == 1:
            return
        for buffer in model.buffers():
            dist.broadcast(buffer.data, 0)

    def check_same(self, model: nn.Module, what: str, only: str = "") -> str:
        """Raise unless every rank holds bit-identical tensors (those whose name contains ``only``)."""
        digest = model_digest(model, only)
        if self.world == 1:
            return digest
        local = torch.tensor(list(bytes.fromhex(digest)), dtype=torch.int64, device=self._comm_device())
        gathered = [torch.zeros_like(local) for _ in range(self.world)]
        dist.all_gather(gathered, local)
        differing = [r for r, g in enumerate(gathered) if not torch.equal(g, gathered[0])]
        if differing:
            raise CondenseDeployError(
                f"{what}: rank(s) {differing} hold a different model than rank 0 ({self.world} ranks)")
        return digest

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        if self.initialised and dist.is_initialized():
            dist.destroy_process_group()
            self.initialised = False

    def _comm_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")


def model_digest(model: nn.Module, only: str = "") -> str:
    """SHA-256 over the parameters and buffers (names containing ``only``), bit for bit."""
    sha = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        if only not in name:
            continue
        sha.update(name.encode())
        sha.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return sha.hexdigest()


def setup(device: str) -> Dist:
    """Join the torchrun job if there is one (gloo on CPU, nccl on CUDA); else a single process."""
    if device == "cuda" and not torch.cuda.is_available():
        raise CondenseDeployError("--device cuda: no CUDA device is available to torch here")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(device=torch.device("cuda" if device == "cuda" else "cpu"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    if device == "cuda":
        torch.cuda.set_device(local_rank)
        backend, dev = "nccl", torch.device("cuda", local_rank)
    else:
        backend, dev = "gloo", torch.device("cpu")
    try:
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    except (RuntimeError, ValueError) as e:
        raise CondenseDeployError(
            f"cannot join the {world}-process {backend} job as rank {rank} ({e})") from e
    return Dist(rank=rank, world=world, local_rank=local_rank, device=dev, initialised=True)
