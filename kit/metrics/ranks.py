"""Feature work shared between DDP ranks: each rank's contiguous share, rows gathered back in rank order, one
decision and one answer for all ranks. With world == 1 every function is the identity, and torch.distributed is
never touched."""
import torch


def share(items, rank: int, world: int):
    """This rank's contiguous slice of `items` (the first len % world ranks get one more), in order."""
    base, extra = divmod(len(items), world)
    start = rank * base + min(rank, extra)
    return items[start:start + base + (rank < extra)]


def gather_rows(rows: torch.Tensor, world: int) -> torch.Tensor:
    """Every rank's rows (counts may differ), concatenated in rank order on every rank."""
    if world == 1:
        return rows
    import torch.distributed as dist
    counts = [torch.zeros(1, dtype=torch.long, device=rows.device) for _ in range(world)]
    dist.all_gather(counts, torch.tensor([len(rows)], dtype=torch.long, device=rows.device))
    padded = rows.new_zeros((int(max(counts)), *rows.shape[1:]))
    padded[:len(rows)] = rows
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([part[:int(count)] for part, count in zip(parts, counts)])


def all_agree(flag: bool, world: int, device) -> bool:
    """True only when `flag` is true on every rank."""
    if world == 1:
        return flag
    import torch.distributed as dist
    value = torch.tensor([int(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


def from_rank_0(obj, world: int, device):
    """Rank 0's `obj` on every rank (any picklable value)."""
    if world == 1:
        return obj
    import torch.distributed as dist
    box = [obj]
    dist.broadcast_object_list(box, src=0, device=device if torch.device(device).type == "cuda" else None)
    return box[0]
