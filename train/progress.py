"""Progress bars (tqdm): one bar over the folds + final fit of a model, one over its epochs."""

from __future__ import annotations

import contextlib
import sys

__all__ = ["Progress"]


class Progress:
    """Thin wrapper so the training code does not depend on tqdm being shown (tests, logs)."""

    def __init__(self, enabled: bool = True, stream=None):
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.outer_ = None

    def model(self, label: str, steps: int):
        """Start the outer bar of one model (``steps`` = folds + 1 final fit)."""
        self.close()
        if self.enabled:
            from tqdm.auto import tqdm

            self.outer_ = tqdm(total=steps, desc=label, unit="fit", position=0, file=self.stream)

    def done_fold(self) -> None:
        if self.outer_ is not None:
            self.outer_.update(1)

    @contextlib.contextmanager
    def epochs(self, desc: str, total: int):
        """Context yielding the per-epoch callback ``(epoch, train_loss, val_loss)``."""
        if not self.enabled:
            yield None
            return
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=desc, unit="ep", position=1, leave=False, file=self.stream)

        def on_epoch(epoch, train_loss, val_loss):
            post = {"train": f"{train_loss:.4g}"}
            if val_loss is not None:
                post["val"] = f"{val_loss:.4g}"
            bar.set_postfix(post, refresh=False)
            bar.update(1)

        try:
            yield on_epoch
        finally:
            bar.close()

    def write(self, text: str) -> None:
        if self.enabled:
            from tqdm.auto import tqdm

            tqdm.write(text, file=self.stream)

    def close(self) -> None:
        if self.outer_ is not None:
            self.outer_.close()
            self.outer_ = None
