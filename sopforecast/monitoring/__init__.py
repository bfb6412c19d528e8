"""Accuracy monitoring of published demand plans: once actuals arrive, every plan version is
scored by level, lag, cycle and segment (:mod:`.accuracy`), series are segmented by demand
pattern, revenue (ABC) and variability (XYZ) (:mod:`.segments`), and the results are held to
planner targets so that the breaches worth acting on come first, with their trend and a
suggested action (:mod:`.exceptions`)."""
