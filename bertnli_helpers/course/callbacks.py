"""Training callbacks: a progress bar, and live curves in a notebook (like the book's animator)."""

from __future__ import annotations

import time

from bertnli_helpers.progress import progress_bar
from bertnli_helpers.train.loop import Callback, TrainState


class ProgressBar(Callback):
    """One bar over all optimizer steps, showing the last loss and examples per second."""

    def __init__(self, desc: str = "fine-tuning", leave: bool = True) -> None:
        self.desc, self.leave = desc, leave
        self.bar = None

    def on_train_begin(self, state: TrainState) -> None:
        self.bar = progress_bar(total=state.total_steps, initial=state.step, desc=self.desc,
                        leave=self.leave, disable=not state.is_main, unit="step")
        self._tick, self._examples = time.perf_counter(), 0

    def on_step_end(self, state: TrainState) -> None:
        if self.bar is None:
            return
        self._examples += state.config.batch_size
        elapsed = time.perf_counter() - self._tick
        self.bar.update(1)
        if state.step % 5 == 0:
            self.bar.set_postfix(loss=f"{state.loss:.3f}", ex_s=f"{self._examples / elapsed:.0f}",
                                 epoch=state.epoch + 1, refresh=False)

    def on_epoch_end(self, state: TrainState, record: dict[str, float]) -> None:
        if self.bar is not None and "dev_accuracy" in record:
            self.bar.write(
                f"epoch {record['epoch']}: train loss {record['train_loss']:.4f}, "
                f"train acc {record['train_accuracy']:.4f}, dev acc {record['dev_accuracy']:.4f}, "
                f"{record['examples_per_s']:.0f} examples/s"
            )

    def on_train_end(self, state: TrainState) -> None:
        if self.bar is not None:
            self.bar.close()


class LiveCurves(Callback):
    """Redraws loss and accuracy curves in a notebook after every evaluation."""

    def __init__(self, title: str | None = None) -> None:
        self.title = title
        self.handle = None

    def _draw(self, state: TrainState) -> None:
        if not state.is_main or not state.history:
            return
        import matplotlib.pyplot as plt
        from IPython.display import display

        from bertnli_helpers.study.plots import training_curves

        fig = training_curves(state.history, title=self.title)
        if self.handle is None:
            self.handle = display(fig, display_id=True)
        else:
            self.handle.update(fig)
        plt.close(fig)

    def on_epoch_end(self, state: TrainState, record: dict[str, float]) -> None:
        self._draw(state)
