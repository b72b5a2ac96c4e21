"""core.progress: tqdm's bar on a terminal, plain lines off one, and the reconciliation commands using it."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command

from core.progress import ProgressBar


class Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_each_step_is_a_plain_line():
    out = StringIO()
    bar = ProgressBar(out, label="payments", total=3, tty=False)
    for done in (1, 3):
        bar(done)
    bar.close()

    assert out.getvalue() == "payments: 1/3\npayments: 3/3\n"


def test_on_a_terminal_one_bar_is_redrawn_with_rate_and_eta():
    out = Terminal()
    bar = ProgressBar(out, label="refunds", total=4, tty=True)
    for done in (1, 2, 4):
        bar(done)
    bar.close()

    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")  # one line, redrawn with \r
    assert re.search(r"\rrefunds:  50%\|#+ *\| 2/4 \[\d\d:\d\d<", text), text
    assert re.search(r"\rrefunds: 100%\|#+\| 4/4 \[\d\d:\d\d<00:00", text), text


def test_a_job_that_finds_more_than_was_due_does_not_overflow():
    out = Terminal()
    bar = ProgressBar(out, label="x", total=1, tty=True)
    bar(3)
    bar.close()

    assert "3/3" in out.getvalue()


@pytest.mark.django_db
def test_the_reconcile_commands_draw_it_on_a_terminal():
    out = Terminal()
    call_command("reconcile_refunds", stdout=out)

    assert "refunds=0" in out.getvalue()
