"""Progress: a bar on a terminal, a few whole lines in a log file or a pipe."""

import io

from onerec_trt.progress import LineProgress, progress_bar


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_progress_without_a_terminal_is_a_few_lines():
    log = io.StringIO()
    for _ in progress_bar(range(1000), desc="epoch 1", unit="batch", file=log):
        pass
    text = log.getvalue()
    lines = text.splitlines()
    assert "\r" not in text and 1 <= len(lines) <= 12, text
    assert lines[-1].startswith("epoch 1: 1000/1000 batch (100%)")


def test_progress_without_a_terminal_counts_updates_and_shows_the_postfix():
    log = io.StringIO()
    bar = progress_bar(total=1000, desc="bench", unit="call", file=log)
    for _ in range(1000):
        bar.update(1)
        bar.set_postfix(loss="0.123")
    bar.close()
    bar.close()  # closing twice prints nothing more
    lines = log.getvalue().splitlines()
    assert len(lines) == 10 and "loss=0.123" in lines[-1] and "\r" not in log.getvalue()


def test_progress_without_a_total_prints_the_end_when_the_loop_stops_early():
    log = io.StringIO()
    for i in progress_bar((x for x in range(10_000)), desc="train", file=log):
        if i == 499:
            break
    assert log.getvalue().splitlines() == [log.getvalue().strip()]
    assert log.getvalue().startswith("train: 499 it in ")


def test_progress_on_a_terminal_is_a_tqdm_bar():
    tty = Terminal()
    bar = progress_bar(range(1000), desc="epoch 1", file=tty)
    assert not isinstance(bar, LineProgress)
    for _ in bar:
        pass
    assert "\r" in tty.getvalue() and "1000/1000" in tty.getvalue()


def test_disabled_progress_writes_nothing():
    for stream in (io.StringIO(), Terminal()):
        assert list(progress_bar(range(5), disable=True, file=stream)) == list(range(5))
        assert stream.getvalue() == ""


def test_bars_that_libraries_draw_are_quiet_in_logs():
    """ModelOpt draws its own tqdm bar (MSE weight calibration): \\r frames in a log unless
    quieted; on a terminal it stays."""
    from tqdm import tqdm

    from onerec_trt.progress import quiet_library_bars

    for stream, drawn in ((io.StringIO(), False), (Terminal(), True)):
        library = io.StringIO()
        with quiet_library_bars(file=stream):
            for _ in tqdm(range(50), desc="MSE weight calibration", file=library):
                pass
        assert ("\r" in library.getvalue()) is drawn
    library = io.StringIO()
    for _ in tqdm(range(50), file=library):  # the default is back after the block
        pass
    assert "\r" in library.getvalue()
