"""The quarantine report: one line per excluded or flagged frame, naming file, frame and field."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mo_transfer.jobs import atomic_write_text


@dataclass(frozen=True)
class QuarantineEntry:
    """One reason why a frame left the dataset ('excluded') or deserves a look ('flagged')."""

    source_file: str
    source_frame: int
    field: str
    reason: str
    action: str = "excluded"

    @property
    def message(self) -> str:
        return f"{self.source_file} frame {self.source_frame}: field '{self.field}': {self.reason} [{self.action}]"


@dataclass
class QuarantineReport:
    """Every excluded or flagged frame with (source_file, source_frame, field, reason); writable as CSV or JSON."""

    entries: list[QuarantineEntry] = field(default_factory=list)

    def add(self, source_file: str, source_frame: int, field_name: str, reason: str, action: str = "excluded") -> None:
        self.entries.append(QuarantineEntry(str(source_file), int(source_frame), field_name, reason, action))

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def excluded(self) -> list[QuarantineEntry]:
        return [e for e in self.entries if e.action == "excluded"]

    @property
    def flagged(self) -> list[QuarantineEntry]:
        return [e for e in self.entries if e.action == "flagged"]

    def messages(self) -> list[str]:
        return [e.message for e in self.entries]

    def rows(self) -> list[dict]:
        return [asdict(e) for e in self.entries]

    def to_csv_text(self) -> str:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=["source_file", "source_frame", "field", "reason", "action"],
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows())
        return buf.getvalue()

    def to_json_text(self) -> str:
        body = {"n_excluded": len(self.excluded), "n_flagged": len(self.flagged), "entries": self.rows()}
        return json.dumps(body, indent=2, sort_keys=True) + "\n"

    def write_csv(self, path: str | Path) -> Path:
        atomic_write_text(path, self.to_csv_text())
        return Path(path)

    def write_json(self, path: str | Path) -> Path:
        atomic_write_text(path, self.to_json_text())
        return Path(path)

