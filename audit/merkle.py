"""RFC 9162 (Certificate Transparency 2.0) Merkle tree hashing over the event chain.

Leaf i is the event with seq i+1; its leaf data is the 32 bytes of that event's chain
hash. A `Frontier` is the tree's right edge — the roots of the perfect subtrees that the
binary expansion of the size describes, left to right — enough to extend the tree and to
compute its root without the earlier leaves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

_sha256 = hashlib.sha256


def leaf_hash(event_hash_hex: str) -> bytes:
    return _sha256(b"\x00" + bytes.fromhex(event_hash_hex)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


EMPTY_ROOT = _sha256(b"").digest()


def split(n: int) -> int:
    """RFC 9162's k for a tree of n ≥ 2 leaves: the largest power of two below n."""
    return 1 << ((n - 1).bit_length() - 1)


class Frontier:
    __slots__ = ("nodes", "size")

    def __init__(self, size: int = 0, nodes: Iterable[bytes] = ()) -> None:
        self.size = size
        self.nodes = list(nodes)
        if len(self.nodes) != bin(size).count("1"):
            raise ValueError("frontier does not match its tree size")

    @classmethod
    def from_hex(cls, size: int, nodes: Iterable[str]) -> Frontier:
        return cls(size, (bytes.fromhex(n) for n in nodes))

    def to_hex(self) -> list[str]:
        return [n.hex() for n in self.nodes]

    def append(self, event_hash_hex: str) -> None:
        self.append_digest(bytes.fromhex(event_hash_hex))

    def append_digest(self, event_hash: bytes) -> None:
        """`append` of the raw 32-byte chain hash."""
        node = _sha256(b"\x00" + event_hash).digest()
        nodes = self.nodes
        size = self.size
        # Each trailing 1-bit of the old size is a perfect subtree the new leaf completes.
        while size & 1:
            node = _sha256(b"\x01" + nodes.pop() + node).digest()
            size >>= 1
        nodes.append(node)
        self.size += 1

    def root(self) -> bytes:
        if not self.nodes:
            return EMPTY_ROOT
        acc = self.nodes[-1]
        for node in reversed(self.nodes[:-1]):
            acc = node_hash(node, acc)
        return acc

    def blocks(self) -> list[tuple[int, int, bytes]]:
        """The nodes with the leaf ranges [start, end) they are the roots of."""
        widths = [1 << b for b in reversed(range(self.size.bit_length())) if self.size >> b & 1]
        out = []
        start = 0
        for width, node in zip(widths, self.nodes, strict=True):
            out.append((start, start + width, node))
            start += width
        return out

    def copy(self) -> Frontier:
        return Frontier(self.size, self.nodes)
