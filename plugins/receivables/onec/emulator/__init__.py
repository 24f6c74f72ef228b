"""An embedded 1C:УТ 11 standard-OData emulator: a generated company served over HTTP.

- :func:`generate_company` builds a deterministic :class:`Dataset` (seed, scale, end date);
- :class:`EmulatorServer` serves it with 1C's quirks and fault switches;
- :func:`serve` is the blocking `receivables emulator` command.
"""

from __future__ import annotations

from receivables.onec.emulator.dataset import Dataset, EntitySet
from receivables.onec.emulator.faults import FAULT_KINDS, Fault, LoggedRequest
from receivables.onec.emulator.generator import generate_company
from receivables.onec.emulator.server import EmulatorServer, serve

__all__ = ["FAULT_KINDS", "Dataset", "EmulatorServer", "EntitySet", "Fault", "LoggedRequest", "generate_company",
           "serve"]
