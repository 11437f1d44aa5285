"""The investigation of Chapter 4, Q-Composition (``04_q_composition.ipynb``): which sender the queries
use, although no Q-composition score stands out (:mod:`mechlib.teaching.findings`)."""
from __future__ import annotations

import functools

from mechlib.teaching.exercise import Exercise
from mechlib.teaching.exercises.k_composition_findings import cases_sender

NOTEBOOK = '04_q_composition'
exercise = functools.partial(Exercise, notebook=NOTEBOOK)

EXERCISES = (
    exercise(id='04.4', function='query_sender', title='Investigate: which sender do the queries use?',
             difficulty=3, importance=3, minutes=15,
             draw=lambda: cases_sender("Q", 91),
             statement='``query_sender(model, tokens, mask)`` returns ``((layer, head), rise)``: the layer-0 head '
                       'whose removal from the queries of every layer-1 head raises the loss on the predictions '
                       '``mask`` marks the most, and that rise in nats.',
             success="the sender and its cost agree with the measurement on every model"),
)
